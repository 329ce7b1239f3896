# syntax=docker/dockerfile:1
# mailmesh image (docs/install.md "Docker"): built in one stage with the dev dependencies,
# run from a second with dist/ and the production node_modules only, as the unprivileged user
# `node`, on a read-only root filesystem; all state is in the volume /var/lib/mailmesh.

FROM node:20-bookworm-slim AS build
# better-sqlite3 compiles its native module when no prebuilt binary fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json openapi.yaml ./
COPY cli ./cli
COPY directory ./directory
COPY federation ./federation
COPY gateway ./gateway
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/better-sqlite3/deps node_modules/better-sqlite3/src node_modules/better-sqlite3/build/Release/obj.target

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    MAILMESH_DATA_DIR=/var/lib/mailmesh \
    MAILMESH_HTTP__HOST=0.0.0.0 \
    MAILMESH_DNS__HOST=0.0.0.0 \
    MAILMESH_LDAP__HOST=0.0.0.0 \
    MAILMESH_SMTP__HOST=0.0.0.0 \
    MAILMESH_LOG__PRETTY=false
WORKDIR /opt/mailmesh
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json openapi.yaml LICENSE ./
RUN mkdir -p /var/lib/mailmesh \
 && chown node:node /var/lib/mailmesh \
 && chmod 0700 /var/lib/mailmesh
USER node
VOLUME ["/var/lib/mailmesh"]
EXPOSE 8080/tcp 5300/udp 5300/tcp 1389/tcp 2525/tcp
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.MAILMESH_HTTP__PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/opt/mailmesh/dist/cli/main.js"]
CMD ["serve"]
