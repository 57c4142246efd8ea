"""A trivial HTTP/1.1 endpoint for load-generator benchmarks: a fixed answer, keep-alive, 127.0.0.1.

Raw asyncio protocol, so the server is not what limits the measured requests/s.
"""
import asyncio
import sys

BODY = b'{"id": "00000000-0000-0000-0000-000000000000", "served_by": "trivial"}'
HEAD = b"Content-Type: application/json\r\nX-Served-By: trivial\r\nContent-Length: %d\r\n\r\n" % len(BODY)
POST = b"HTTP/1.1 201 Created\r\n" + HEAD + BODY
GET = b"HTTP/1.1 200 OK\r\n" + HEAD + BODY


class Trivial(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            i = head.find(b"content-length:")
            if i >= 0:
                length = int(head[i + 15:].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(POST if head.startswith(b"post") else GET)


async def main(port: int, host: str = "127.0.0.1") -> None:
    server = await asyncio.get_running_loop().create_server(Trivial, host, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), *sys.argv[2:3]))  # a host only inside a container (its network)
