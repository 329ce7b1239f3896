#!/usr/bin/env bash
# Builds mailmesh from this checkout and installs it for a server (docs/install.md):
#   <prefix>/dist, node_modules (production only), package.json, openapi.yaml, LICENSE, docs/
#   <prefix>/bin/mailmesh            wrapper: this machine's node + dist/cli/main.js
#   <bindir>/mailmesh                symlink to it
#   <sysconfdir>/mailmesh.yaml       created only if missing (dataDir /var/lib/mailmesh)
#   <unitdir>/mailmesh.service       deploy/systemd/mailmesh.service with the prefix filled in
#   <sysusersdir>/mailmesh.conf      the system user `mailmesh` (created by systemd-sysusers)
# An upgrade installs beside the old tree and swaps it in; the old one stays as <prefix>.previous.
# Every path takes DESTDIR in front (staged installs, packaging, tests); no root needed then.
set -euo pipefail

PREFIX=${PREFIX:-/opt/mailmesh}
BINDIR=${BINDIR:-/usr/local/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc/mailmesh}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-/etc/sysusers.d}
DESTDIR=${DESTDIR:-}
UNIT=yes

usage() {
  cat <<EOF
usage: deploy/install.sh [--prefix DIR] [--bindir DIR] [--sysconfdir DIR] [--unitdir DIR] [--sysusersdir DIR] [--destdir DIR] [--no-unit]
  --prefix      where mailmesh goes (default /opt/mailmesh; env PREFIX)
  --bindir      where the mailmesh command is linked (default /usr/local/bin; env BINDIR)
  --sysconfdir  configuration folder (default /etc/mailmesh; env SYSCONFDIR)
  --unitdir     systemd unit folder (default /etc/systemd/system; env UNITDIR)
  --sysusersdir sysusers.d folder for the user mailmesh (default /etc/sysusers.d; env SYSUSERSDIR)
  --destdir     staging root put in front of every path (default none; env DESTDIR)
  --no-unit     do not install the systemd unit nor its user
EOF
}
die() { echo "install.sh: $1" >&2; exit "${2:-1}"; }
value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value" 64; printf '%s' "$2"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$(value "$@"); shift 2 ;;
    --bindir) BINDIR=$(value "$@"); shift 2 ;;
    --sysconfdir) SYSCONFDIR=$(value "$@"); shift 2 ;;
    --unitdir) UNITDIR=$(value "$@"); shift 2 ;;
    --sysusersdir) SYSUSERSDIR=$(value "$@"); shift 2 ;;
    --destdir) DESTDIR=$(value "$@"); shift 2 ;;
    --no-unit) UNIT=no; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" 64 ;;
  esac
done
for p in "$PREFIX" "$BINDIR" "$SYSCONFDIR" "$UNITDIR" "$SYSUSERSDIR"; do
  case "$p" in /*) ;; *) die "paths must be absolute: $p" 64 ;; esac
done
# The paths go into a shell wrapper and a sed replacement: plain characters only.
for p in "$PREFIX" "$BINDIR" "$SYSCONFDIR" "$UNITDIR" "$SYSUSERSDIR" "$DESTDIR"; do
  [[ "$p" =~ ^[A-Za-z0-9/._-]*$ ]] || die "unsupported character in path: $p (use letters, digits, / . _ -)" 64
done
# The prefix is a tree this script owns and replaces on upgrade: never an existing folder of
# something else (/usr/local, /opt), which would be moved aside and later deleted.
MARKER=.mailmesh-install
if [ -e "$DESTDIR$PREFIX" ] && [ ! -e "$DESTDIR$PREFIX/$MARKER" ]; then
  die "$PREFIX exists and was not installed by this script: choose a folder of its own (default /opt/mailmesh)" 64
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE=$(command -v node) || die "node not found (Node.js 20.19 or later is needed)" 69
command -v npm >/dev/null || die "npm not found" 69
"$NODE" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>=22||(a===20&&b>=19)?0:1)' \
  || die "Node.js $("$NODE" --version) does not fit: 20.19 or later (20.x), or 22 and later" 69
[[ "$NODE" =~ ^[A-Za-z0-9/._-]+$ ]] || die "unsupported character in the path of node: $NODE" 64
case "$NODE" in
  /home/*|/root/*) echo "install.sh: warning: $NODE is under /home or /root; the unit (ProtectHome=yes) cannot run it: install Node.js system-wide" >&2 ;;
esac

root="$DESTDIR$PREFIX"
stage="$root.new"
rm -rf "$stage"
mkdir -p "$stage"
trap 'rm -rf "$stage"' EXIT

# Build. A fresh clone gets its dependencies first (npm ci runs `prepare`, which builds too).
# The compiler writes straight into the new tree: the checkout's own dist/ is left as it is.
cd "$src"
if [ ! -x node_modules/.bin/tsc ]; then
  echo "install.sh: npm ci (dependencies for the build)"
  npm ci --no-audit --no-fund
fi
echo "install.sh: building into $stage/dist"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$stage/dist" --sourceMap false

# Prune: the production dependencies only, from the built node_modules (native modules such as
# better-sqlite3 are already compiled for this machine's node), checked against the lock file.
cp package.json package-lock.json openapi.yaml LICENSE README.md "$stage/"
cp -R docs "$stage/docs"
cp -R node_modules/. "$stage/node_modules"
(cd "$stage" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund >/dev/null)

mkdir -p "$stage/bin"
cat > "$stage/bin/mailmesh" <<EOF
#!/bin/sh
exec "$NODE" "$PREFIX/dist/cli/main.js" "\$@"
EOF
chmod 0755 "$stage/bin/mailmesh"
echo "installed by deploy/install.sh; this tree is replaced on upgrade" > "$stage/$MARKER"

# Swap in the new tree; the old one stays beside it for a rollback.
if [ -e "$root" ]; then rm -rf "$root.previous"; mv "$root" "$root.previous"; fi
mv "$stage" "$root"
trap - EXIT

if [ "$BINDIR" != "$PREFIX/bin" ]; then
  mkdir -p "$DESTDIR$BINDIR"
  ln -sfn "$PREFIX/bin/mailmesh" "$DESTDIR$BINDIR/mailmesh"
fi

mkdir -p "$DESTDIR$SYSCONFDIR"
if [ ! -e "$DESTDIR$SYSCONFDIR/mailmesh.yaml" ]; then
  install -m 0644 "$src/deploy/mailmesh.yaml" "$DESTDIR$SYSCONFDIR/mailmesh.yaml"
  echo "install.sh: wrote $SYSCONFDIR/mailmesh.yaml"
else
  echo "install.sh: kept $SYSCONFDIR/mailmesh.yaml"
fi

if [ "$UNIT" = yes ]; then
  mkdir -p "$DESTDIR$UNITDIR" "$DESTDIR$SYSUSERSDIR"
  sed -e "s#/opt/mailmesh#$PREFIX#g" -e "s#/etc/mailmesh#$SYSCONFDIR#g" "$src/deploy/systemd/mailmesh.service" > "$DESTDIR$UNITDIR/mailmesh.service"
  chmod 0644 "$DESTDIR$UNITDIR/mailmesh.service"
  install -m 0644 "$src/deploy/systemd/mailmesh.sysusers" "$DESTDIR$SYSUSERSDIR/mailmesh.conf"
  # On a running systemd (not a staged install): the user now, and the new unit.
  if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemd-sysusers "$SYSUSERSDIR/mailmesh.conf"
    systemctl daemon-reload
  fi
  echo "install.sh: unit $UNITDIR/mailmesh.service (systemctl enable --now mailmesh)"
fi
echo "install.sh: installed $("$root/bin/mailmesh" --version 2>/dev/null || echo mailmesh) in $PREFIX"
