"""uvicorn started from Python, on fastloop (tests/test_integrations.py).

    python -m tests.apps.uvicorn_run run PORT     # uvicorn.run(..., loop="fastloop:new_event_loop")
    python -m tests.apps.uvicorn_run serve PORT   # uvicorn.Server.serve() under fastloop.run()
"""
import sys

import uvicorn


def main(mode, port):
    if mode == "run":
        uvicorn.run("tests.apps.asgi:app", host="127.0.0.1", port=port,
                    loop="fastloop:new_event_loop")
    elif mode == "serve":
        import fastloop

        from tests.apps.asgi import app

        async def serve():
            config = uvicorn.Config(app, host="127.0.0.1", port=port)
            await uvicorn.Server(config).serve()

        try:
            fastloop.run(serve())
        except KeyboardInterrupt:
            # Server.serve() re-raises the SIGINT it handled once it has shut
            # down, and asyncio's Runner turns that into KeyboardInterrupt
            # (the same on asyncio's loop); uvicorn.run() catches it too.
            pass
    else:
        raise SystemExit("unknown mode %r" % mode)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
