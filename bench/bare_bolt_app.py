"""The footprint bench's baseline (bench/footprint.py): a bare slack-bolt app on aiohttp, the least a Slack bot
over HTTP needs. One AsyncApp (the signing secret, a bot token, the Web API at SLACK_API_URL) whose only listener
acks the slash command, mounted at POST /slack/events, plus GET /healthz (the path the bench waits for). It reads
the same variables as `madoguchi serve` and imports nothing of madoguchi, so it runs in an image of its own.

Usage: python bench/bare_bolt_app.py [--host 127.0.0.1] [--port 3000] [--path /healthz]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def make_app(path: str) -> web.Application:
    bolt = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], process_before_response=True,
                    client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"],
                                          base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/")))

    @bolt.command("/madoguchi")
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get(path, health)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--path", default="/healthz")
    args = parser.parse_args(argv)
    web.run_app(make_app(args.path), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
