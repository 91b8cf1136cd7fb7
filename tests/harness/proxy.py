"""A TCP relay in front of a server, which can hold back one message: a test stops a Citus node's
commit between its two phases with it. Connections through it are relayed byte for byte; once
`hold(pattern)` is armed, the first chunk a client sends that contains `pattern` (say
b"COMMIT PREPARED") waits until `release()`, while every other connection, and that connection's
answers, go on. `watch(pattern)` counts the chunks sent to the server that contain `pattern` from
then on (`seen()`): a test shows with it that nothing of a call reached this server. The relayed
protocol must be in clear (the Citus nodes connect to each other with
`sslmode=disable` for this)."""

import socket
import threading


class Relay:
    def __init__(self, upstream_port, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.pattern = None
        self.held = threading.Event()  # set once a chunk is being held
        self.go = threading.Event()
        self.watched, self.count, self.chunks = None, 0, []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, pattern):
        """Hold back the next chunk sent to the server that contains `pattern`."""
        with self.lock:
            self.pattern, self.held, self.go = pattern, threading.Event(), threading.Event()

    def watch(self, pattern):
        """Count, from now on, the chunks sent to the server that contain `pattern`."""
        with self.lock:
            self.watched, self.count, self.chunks = pattern, 0, []

    def seen(self):
        """How many chunks containing the watched pattern were sent to the server."""
        with self.lock:
            return self.count

    def seen_chunks(self):
        """The chunks counted by `seen()`, to show in a failed assertion."""
        with self.lock:
            return list(self.chunks)

    def release(self):
        """Let the held chunk (if any) through, and hold nothing more."""
        with self.lock:
            self.pattern = None
            self.go.set()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source, sink, to_server):
        try:
            while chunk := source.recv(65536):
                if to_server:
                    with self.lock:
                        armed = self.pattern is not None and self.pattern in chunk
                        if self.watched is not None and self.watched in chunk:
                            self.count += 1
                            self.chunks.append(chunk)
                        if armed:
                            self.pattern = None
                        held, go = self.held, self.go
                    if armed:
                        held.set()
                        go.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.release()
        self.listener.close()
