#!/usr/bin/env python3
"""Sends one UDP datagram with a chosen source port (0 too) through a raw socket (needs root).

usage: raw-udp.py <dst-ipv4> <dst-port> <src-port> <payload-hex>
Builds the IPv4 header (RFC 791 §3.1) and the UDP header (RFC 768) itself (IP_HDRINCL);
the kernel fills in the IP checksum and total length; the UDP checksum 0 means "none" (RFC 768).
Only loopback destinations are allowed.
"""
import socket
import struct
import sys

dst, dport, sport, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
if not dst.startswith('127.'):
    sys.exit('raw-udp.py sends to 127.0.0.0/8 only')
udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                 socket.inet_aton('127.0.0.1'), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.sendto(ip + udp, (dst, 0))
s.close()
