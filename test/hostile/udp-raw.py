#!/usr/bin/env python3
"""Sends one UDP datagram with a chosen source address and port (0 included) through a raw
IPv4 socket (IP_HDRINCL, root only): RFC 791 header + RFC 768 header, UDP checksum 0 (none).
Used by network.test.ts; loopback only.

usage: udp-raw.py SRC_IP SRC_PORT DST_IP DST_PORT HEX_PAYLOAD
"""
import ipaddress
import socket
import struct
import sys

src, sport, dst, dport, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), bytes.fromhex(sys.argv[5])
for a in (src, dst):
    if not ipaddress.ip_address(a).is_loopback:
        sys.exit("loopback addresses only")
udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
# The kernel fills in the total length, the ID and the header checksum (raw(7)).
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.sendto(ip + udp, (dst, 0))
