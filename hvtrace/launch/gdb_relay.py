"""The relay between gdb and the hypervisor's resident gdb stub under Bochs (issue 17).

Bochs serves COM3 (the stub's UART, hypervisor option ``gdbstub=1``) as a TCP server that accepts one
client and blocks the emulator's start in ``accept()`` until it comes. The relay is that client from
the start, so the machine boots at once, and listens on the port the user asked for (``--gdb PORT``;
0: a free one): each gdb that connects gets the line until it leaves, a later one takes it over
(attach, detach, attach again). Bytes the stub sends while no gdb is connected are dropped.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

CONNECT_TIMEOUT = 60.0


class GdbRelay:
    def __init__(self, public_port: int = 0, backend_port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", public_port))
        #: Where gdb connects (``target remote 127.0.0.1:PORT``).
        self.port: int = self.listener.getsockname()[1]
        #: Where Bochs listens (its com3 socket-server); 0 picks a free one now.
        self.backend_port = backend_port or _free_port()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gdb-relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.listener.close()

    def _connect_backend(self) -> socket.socket | None:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                return socket.create_connection(("127.0.0.1", self.backend_port), timeout=1.0)
            except OSError:
                time.sleep(0.1)
        return None

    def _run(self) -> None:
        backend = self._connect_backend()
        if backend is None:
            return
        backend.settimeout(None)
        _no_delay(backend)
        client: socket.socket | None = None
        sel = selectors.DefaultSelector()
        sel.register(backend, selectors.EVENT_READ, "backend")
        sel.register(self.listener, selectors.EVENT_READ, "listener")
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    if key.data == "listener":
                        conn, _addr = self.listener.accept()
                        if client is not None:
                            sel.unregister(client)
                            client.close()
                        client = conn
                        _no_delay(client)
                        sel.register(client, selectors.EVENT_READ, "client")
                        continue
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data = sock.recv(65536)
                    if key.data == "backend":
                        _quick_ack(backend)
                        if not data:
                            return  # Bochs is gone
                        if client is not None:
                            with contextlib.suppress(OSError):
                                client.sendall(data)
                    elif data:
                        backend.sendall(data)
                    else:  # gdb left: the next one may come
                        assert client is not None
                        sel.unregister(client)
                        client.close()
                        client = None
        finally:
            sel.close()
            if client is not None:
                client.close()
            backend.close()


def _no_delay(sock: socket.socket) -> None:
    """Packets go out at once: the protocol is small packets, one round trip each (Nagle would hold
    each behind the peer's delayed ACK, ~40 ms)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _quick_ack(sock: socket.socket) -> None:
    """ACK Bochs' bytes at once (it sends the stub's output a byte at a time, Nagle on): Linux resets
    TCP_QUICKACK after use, so it is set again after every read."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
