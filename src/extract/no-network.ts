// Preloaded into every extraction child (`--import`, before the entry and any parser): Node 24's
// permission model has no network permission (`--allow-net` arrived in Node 25), so a parser exploit
// could still open sockets to Postgres or Redis. Every way to a socket in JavaScript goes through
// net.Socket#connect, net.Server#listen or dgram.Socket (http, https, tls, undici's fetch, Redis and
// Postgres clients all do): they are replaced here by a refusal and locked, and the bindings below
// them are out of reach (process.binding is refused under --permission). The IPC channel to the
// parent is an inherited pipe and needs none of them. Defence in depth: the child also holds no
// credentials (child-spawn.ts).
import dgram from "node:dgram";
import net from "node:net";

function refuse(): never {
  throw Object.assign(new Error("network access is disabled in extraction children"), { code: "ERR_ACCESS_DENIED" });
}

function lock(proto: object, name: string): void {
  Object.defineProperty(proto, name, { value: refuse, writable: false, configurable: false, enumerable: false });
}

lock(net.Socket.prototype, "connect");
lock(net.Server.prototype, "listen");
lock(dgram.Socket.prototype, "bind");
lock(dgram.Socket.prototype, "send");
lock(dgram.Socket.prototype, "connect");
