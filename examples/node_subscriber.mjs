// A skelstream subscriber in plain Node.js (>= 18), no npm packages: it speaks ZMTP 3.0
// (ZeroMQ's wire protocol, NULL security) and decodes msgpack itself, to show that
// docs/schema.md is all a non-Python consumer needs. For real applications use the `zeromq` and
// `@msgpack/msgpack` npm packages instead of the two small implementations below.
//
//   node examples/node_subscriber.mjs tcp://127.0.0.1:5555 [--stream cam0] [--count N] [--json]
//
// Prints one line per frame (or one JSON object per line with --json).
import net from "node:net";

const args = process.argv.slice(2);
const endpoint = args[0] ?? "tcp://127.0.0.1:5555";
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const stream = opt("--stream", "");
const count = Number(opt("--count", "0"));
const asJson = args.includes("--json");
const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(endpoint);
if (!m) {
  console.error(`error: endpoint must be tcp://HOST:PORT (got ${endpoint})`);
  process.exit(2);
}

// ---------------------------------------------------------------- msgpack (decode only)
function decodeMsgpack(buf) {
  let pos = 0;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const str = (n) => { const s = buf.toString("utf8", pos, pos + n); pos += n; return s; };
  const bin = (n) => { const b = buf.subarray(pos, pos + n); pos += n; return b; };
  const arr = (n) => { const a = []; for (let i = 0; i < n; i++) a.push(read()); return a; };
  const map = (n) => { const o = {}; for (let i = 0; i < n; i++) { const k = read(); o[k] = read(); } return o; };
  function read() {
    if (pos >= buf.length) throw new Error("truncated msgpack");
    const b = buf[pos++];
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xf0) === 0x80) return map(b & 0x0f);
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f);
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
    let v;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: v = dv.getUint8(pos); pos += 1; return bin(v);
      case 0xc5: v = dv.getUint16(pos); pos += 2; return bin(v);
      case 0xc6: v = dv.getUint32(pos); pos += 4; return bin(v);
      case 0xca: v = dv.getFloat32(pos); pos += 4; return v;
      case 0xcb: v = dv.getFloat64(pos); pos += 8; return v;
      case 0xcc: v = dv.getUint8(pos); pos += 1; return v;
      case 0xcd: v = dv.getUint16(pos); pos += 2; return v;
      case 0xce: v = dv.getUint32(pos); pos += 4; return v;
      case 0xcf: v = dv.getBigUint64(pos); pos += 8; return Number(v); // ns: 2^53 is enough till 2255
      case 0xd0: v = dv.getInt8(pos); pos += 1; return v;
      case 0xd1: v = dv.getInt16(pos); pos += 2; return v;
      case 0xd2: v = dv.getInt32(pos); pos += 4; return v;
      case 0xd3: v = dv.getBigInt64(pos); pos += 8; return Number(v);
      case 0xd9: v = dv.getUint8(pos); pos += 1; return str(v);
      case 0xda: v = dv.getUint16(pos); pos += 2; return str(v);
      case 0xdb: v = dv.getUint32(pos); pos += 4; return str(v);
      case 0xdc: v = dv.getUint16(pos); pos += 2; return arr(v);
      case 0xdd: v = dv.getUint32(pos); pos += 4; return arr(v);
      case 0xde: v = dv.getUint16(pos); pos += 2; return map(v);
      case 0xdf: v = dv.getUint32(pos); pos += 4; return map(v);
      default: throw new Error(`unsupported msgpack byte 0x${b.toString(16)}`);
    }
  }
  return read();
}

// raw little-endian float32 bytes -> plain array (docs/schema.md, "Array encoding")
const f32 = (b) => (b ? Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(4 * i)) : null);

// ---------------------------------------------------------------- ZMTP 3.0, SUB side
function greeting() {
  const g = Buffer.alloc(64);
  g[0] = 0xff; g[9] = 0x7f;        // signature
  g[10] = 3; g[11] = 0;            // version 3.0: subscriptions are messages starting 0x01
  g.write("NULL", 12, "ascii");    // mechanism, zero padded to 20 bytes; as-server = 0
  return g;
}

function frame(body, flags) {      // short frames only (< 256 bytes) are ever sent by us
  return Buffer.concat([Buffer.from([flags, body.length]), body]);
}

function readyCommand() {
  const name = Buffer.from("Socket-Type"), value = Buffer.from("SUB");
  const len = Buffer.alloc(4); len.writeUInt32BE(value.length);
  const body = Buffer.concat([Buffer.from([5]), Buffer.from("READY"),
    Buffer.from([name.length]), name, len, value]);
  return frame(body, 0x04);        // 0x04 = command
}

const topic = stream ? Buffer.concat([Buffer.from(stream), Buffer.from([0])]) : Buffer.alloc(0);
const sock = net.connect(Number(m[2]), m[1]);
let rx = Buffer.alloc(0), greeted = false, parts = [], frames = 0, dofNames = null;

sock.on("connect", () => sock.write(Buffer.concat([greeting(), readyCommand()])));
sock.on("error", (e) => { console.error(`error: ${e.message}`); process.exit(1); });
sock.on("data", (chunk) => {
  rx = Buffer.concat([rx, chunk]);
  if (!greeted) {
    if (rx.length < 64) return;
    rx = rx.subarray(64);          // peer greeting (we only accept NULL, as configured)
    greeted = true;
  }
  for (;;) {
    if (rx.length < 2) return;
    const flags = rx[0], long = flags & 0x02;
    const head = long ? 9 : 2;
    if (rx.length < head) return;
    const size = long ? Number(rx.readBigUInt64BE(1)) : rx[1];
    if (size > (1 << 20) + 256) { console.error("error: oversized frame"); process.exit(1); }
    if (rx.length < head + size) return;
    const body = rx.subarray(head, head + size);
    rx = rx.subarray(head + size);
    if (flags & 0x04) {            // command: READY from the publisher -> subscribe now
      if (body.subarray(1, 1 + body[0]).toString() === "READY")
        sock.write(frame(Buffer.concat([Buffer.from([1]), topic]), 0x00));
      continue;
    }
    parts.push(Buffer.from(body));
    if (flags & 0x01) continue;    // MORE: the payload follows the topic
    const msg = parts; parts = [];
    if (msg.length === 2) handle(msg[1]);
  }
});

function handle(payload) {
  let m;
  try { m = decodeMsgpack(payload); } catch (e) { console.error(`skip: ${e.message}`); return; }
  if (m.schema !== 1) { console.error(`error: schema version ${m.schema}, this reads 1`); process.exit(2); }
  if (m.kind === "meta") { dofNames = m.dof_names; return; }
  if (m.kind === "heartbeat") { if (!asJson) console.log(`[${m.stream}] nobody in view`); return; }
  if (m.kind !== "frame") return;
  const persons = m.persons.map((p) => ({ track_id: p.track_id, state: p.state, q: f32(p.q),
    trans_m: f32(p.trans_m), limit_active: p.limit_active ? Array.from(p.limit_active) : null }));
  if (asJson) {
    console.log(JSON.stringify({ stream: m.stream, seq: m.seq, pub_seq: m.pub_seq,
      have_meta: dofNames !== null, persons }));
  } else {
    const knee = dofNames ? dofNames.indexOf("knee_angle_r") : 6;
    const txt = persons.map((p) => `#${p.track_id} knee_r=${(p.q[knee] * 180 / Math.PI).toFixed(1)}deg`);
    console.log(`[${m.stream}] seq ${m.seq} people ${persons.length} ${txt.join(" ")}`);
  }
  frames += 1;
  if (count && frames >= count) { sock.destroy(); process.exit(0); }
}
