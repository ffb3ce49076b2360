"""uvicorn as StaySync runs it: `staysync serve` and the tests' live servers share these options."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app.settings import Settings

GOING_AWAY = 1001


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol (on websockets, sans I/O: uvicorn's default), except that the
    sockets still open at shutdown are closed with 1001 (going away: reconnect, to another worker
    or once the new version is up) where uvicorn says 1012. The app hears the same code as a
    disconnect, so its subscriptions end at once."""

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent:
            self.close_sent = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
            self.conn.send_close(GOING_AWAY, "Server shutting down")
            self.transport.write(b"".join(self.conn.data_to_send()))
        super().shutdown()  # the close is sent: it stops the keepalive and closes the transport


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `uvicorn.run` / `uvicorn.Config` need beyond the app, host and port."""
    return {
        "ws": f"{__name__}:{GoingAwayWebSocketProtocol.__name__}",
        # In-flight requests get this long to finish once the server is told to stop; then they
        # are cancelled and the worker exits.
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        "access_log": settings.logs_access,
    }
