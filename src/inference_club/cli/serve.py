"""``inference-club serve``: run the gateway."""

import argparse

from inference_club.cli.logs import configure_logging
from inference_club.cli.options import add_data_option, env, fail


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``serve`` command."""
    parser = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway: the /v1 API, the tunnel endpoint agents dial, the "
        "dashboard. Applies database migrations on start. Every flag also reads an "
        "INFERENCE_CLUB_* environment variable.",
    )
    parser.add_argument(
        "--host",
        default=env("HOST", "127.0.0.1"),
        help="address to listen on (env INFERENCE_CLUB_HOST, default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("PORT", "8000") or "8000"),
        help="port to listen on, 0 for any free port (env INFERENCE_CLUB_PORT, default 8000)",
    )
    add_data_option(parser)
    parser.add_argument(
        "--public-url",
        default=env("PUBLIC_URL"),
        help="base URL clients use to reach this gateway, used in asset links "
        "(env INFERENCE_CLUB_PUBLIC_URL, default http://HOST:PORT)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=int(env("MAX_REQUEST_BYTES", str(25 * 1024 * 1024)) or 0),
        help="largest request body accepted, in bytes "
        "(env INFERENCE_CLUB_MAX_REQUEST_BYTES, default 26214400 = 25 MB)",
    )
    parser.add_argument(
        "--upstream-timeout",
        type=float,
        default=float(env("UPSTREAM_TIMEOUT", "120") or "120"),
        help="seconds to wait for a provider's response head before answering 502 "
        "(env INFERENCE_CLUB_UPSTREAM_TIMEOUT, default 120)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=float(env("HEARTBEAT_INTERVAL", "5") or "5"),
        help="seconds between tunnel heartbeats; an agent silent for three is dropped "
        "(env INFERENCE_CLUB_HEARTBEAT_INTERVAL, default 5)",
    )
    parser.add_argument(
        "--queue-timeout",
        type=float,
        default=float(env("QUEUE_TIMEOUT", "30") or "30"),
        help="seconds a request waits for a busy provider before 503 overloaded "
        "(env INFERENCE_CLUB_QUEUE_TIMEOUT, default 30)",
    )
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        default=int(env("REQUESTS_PER_MINUTE", "600") or "600"),
        help="default rate limit per API key; admins can set another per user with "
        "'users set-limit' (env INFERENCE_CLUB_REQUESTS_PER_MINUTE, default 600)",
    )
    parser.add_argument(
        "--redis-url",
        default=env("REDIS_URL"),
        help="Redis for rate-limit counters shared by several gateway nodes, e.g. "
        "redis://127.0.0.1:6379/0 (env INFERENCE_CLUB_REDIS_URL, default: in memory)",
    )
    parser.add_argument(
        "--max-images-per-request",
        type=int,
        default=int(env("MAX_IMAGES_PER_REQUEST", "4") or "4"),
        help="most images one generation or edit may return; a larger n is clamped "
        "(env INFERENCE_CLUB_MAX_IMAGES_PER_REQUEST, default 4)",
    )
    parser.add_argument(
        "--session-secret",
        default=env("SESSION_SECRET"),
        help="secret that signs dashboard session cookies; prefer the env var, which `ps` "
        "does not show (env INFERENCE_CLUB_SESSION_SECRET, default a random one kept in "
        "DATA/session-secret)",
    )
    parser.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (env INFERENCE_CLUB_LOG_LEVEL, default info)",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    # Heavy imports wait until needed, so `inference-club agent` works without the gateway extra.
    try:
        from inference_club.gateway import GatewaySettings  # noqa: PLC0415
        from inference_club.gateway.server import run  # noqa: PLC0415
    except ImportError as exc:
        return fail(
            f"the gateway needs the 'gateway' extra ({exc.name} is missing): "
            "pip install 'inference-club[gateway]'"
        )
    configure_logging(args.log_level)
    try:
        settings = GatewaySettings(
            host=args.host,
            port=args.port,
            data_dir=args.data,
            database_url=args.database_url,
            public_url=args.public_url,
            max_request_bytes=args.max_request_bytes,
            log_level=args.log_level,
            upstream_timeout=args.upstream_timeout,
            heartbeat_interval=args.heartbeat_interval,
            max_images_per_request=args.max_images_per_request,
            requests_per_minute=args.requests_per_minute,
            queue_timeout=args.queue_timeout,
            redis_url=args.redis_url,
            session_secret=args.session_secret,
        )
        run(settings)
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    return 0
