"""Runs the service around `ToneTranscriber` in a process of its own, for the load test.

Usage: python tests/service/stub_server.py --queue-size 4 --seconds-per-note 0.005
Prints `PORT <n>` once listening on a free 127.0.0.1 port, then serves until terminated.
"""

import argparse
import sys

import uvicorn
from service_support import ToneTranscriber, free_loopback_socket

from keras_mt3.service import ServiceSettings, create_app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue-size", type=int, default=4)
    parser.add_argument("--max-kept-results", type=int, default=10)
    parser.add_argument("--seconds-per-note", type=float, default=0.0)
    args = parser.parse_args()
    settings = ServiceSettings(queue_size=args.queue_size, max_kept_results=args.max_kept_results)
    app = create_app(ToneTranscriber(args.seconds_per_note), settings)
    sock = free_loopback_socket()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
