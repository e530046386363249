"""A customer API for the benchmark: answers every number of the seed document's shape after
a fixed latency (the "Routages intelligents" lookup: destination1..4, vip, astreinte).

    python -m bench.upstream_api PORT [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

ANSWER = {
    "destination1": "207",
    "destination2": "209",
    "destination3": "214",
    "destination4": "216",
    "vip": True,
    "astreinte": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    requests = 0

    async def lookup(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        if request.headers.get("Authorization") != "Bearer bench-token":
            return web.json_response({"error": "not authorized"}, status=403)
        await asyncio.sleep(latency)
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_get("/api/v1/smartRoutings", lookup)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
