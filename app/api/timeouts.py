"""Request timeouts: a request whose response has not started within ``request_timeout_s``
gets a 503 problem body at the deadline instead of a connection that hangs.

What "abandoned" means here, honestly: Python cannot kill a thread, so an evaluation computing
in a threadpool worker runs to its end. The request's handler runs in a task of its own inside
an AnyIO cancel scope; at the deadline the client gets its 503 and the scope is cancelled.
Starlette's threadpool calls are shielded, so the cancellation lands at the handler's next
await after the thread returns: nothing after it runs (a ``persist: true`` report is not
stored), the request's transaction rolls back, and whatever the task still sends is dropped.
The thread (and its database connection, if it holds one) stays busy until then.

A response that has started (a Server-Sent Events stream) is never cut.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem_response
from app.errors import RequestTimeout

log = logging.getLogger(__name__)

#: Seconds a client is told to wait before retrying a timed-out request.
RETRY_AFTER_S = 5


class TimeoutMiddleware:
    """Pure ASGI middleware: 503 for a request not answered within ``timeout_s`` seconds."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._abandoned: set[asyncio.Task[None]] = set()

    @property
    def abandoned(self) -> int:
        """Timed-out requests whose handler has not finished yet (its thread still runs)."""
        return len(self._abandoned)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; answer 503 at the deadline if the response has not started."""
        if scope["type"] != "http" or self.timeout_s <= 0:
            await self.app(scope, receive, send)
            return
        started = timed_out = False
        cancel_scope = anyio.CancelScope()

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the client already has its 503
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def handle() -> None:
            with cancel_scope:
                await self.app(scope, receive, guarded_send)

        task = asyncio.ensure_future(handle())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
            if done or started:
                await task  # finished, or streaming: let it run to its end
                return
        except asyncio.CancelledError:
            task.cancel()  # the server is going away: do not leave the handler behind
            raise
        timed_out = True
        cancel_scope.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        err = RequestTimeout(
            f"the request did not complete within {self.timeout_s:g} s "
            "(EVALSERVE_REQUEST_TIMEOUT_S); its work was abandoned and nothing was stored: "
            "retry later, or send a smaller batch"
        )
        response = problem_response(
            err.status_code,
            err.title,
            err.detail,
            instance=str(scope.get("path", "")),
            slug=err.type_slug,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        await response(scope, receive, send)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a timed-out request's handler raised", exc_info=task.exception())
