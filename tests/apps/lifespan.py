"""The lifespan protocol for test apps that need nothing at startup or shutdown."""


async def accept_lifespan(receive, send) -> None:
    """Complete startup, then shutdown, and return (the app's answer to a "lifespan" scope)."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
