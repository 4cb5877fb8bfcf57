"use strict";
// Standard Webhooks verification for webhook_receiver.py, done by the
// reference npm package `standardwebhooks` (an implementation independent
// of evbus). One long-lived process; JSON lines on stdin, one JSON line
// answered on stdout for each:
//
//   {"secret": "whsec_...", "headers": {...}, "body": "..."}
//       -> {"ok": true} | {"ok": false, "error": "..."}
//   {"op": "ping"}
//       -> {"ok": true, "node": "v18...", "standardwebhooks": "1.1.1"}
//   {"op": "sign", "secret": "whsec_...", "id": "msg_...", "timestamp": 1614265330, "body": "..."}
//       -> {"ok": true, "signature": "v1,..."}   (the library's own signer)
//
// The package is found through NODE_PATH (the receiver passes `npm root -g`).
// If it cannot be loaded, the first line written is
// {"ok": false, "fatal": "..."} and the process exits with status 3.
// Works on Node 18 (Debian 12's nodejs) and later.

const readline = require("readline");

let Webhook;
let version = "unknown";
try {
    ({ Webhook } = require("standardwebhooks"));
} catch (e) {
    const first = String((e && e.message) || e).split("\n")[0];
    process.stdout.write(
        JSON.stringify({
            ok: false,
            fatal:
                "cannot load the npm package standardwebhooks (" + first + "; NODE_PATH=" +
                (process.env.NODE_PATH || "") + ")",
        }) + "\n",
    );
    process.exit(3);
}
try {
    version = require("standardwebhooks/package.json").version;
} catch (e) {
    // the version is informational only
}

function handle(req) {
    if (req.op === "ping") {
        return { ok: true, node: process.version, standardwebhooks: version };
    }
    if (req.op === "sign") {
        const wh = new Webhook(req.secret);
        return {
            ok: true,
            signature: wh.sign(req.id, new Date(Number(req.timestamp) * 1000), req.body),
        };
    }
    // jsonParse: false: a body that is not JSON still verifies by its bytes
    // (the library would otherwise throw a SyntaxError after a match).
    new Webhook(req.secret).verify(req.body, req.headers || {}, { jsonParse: false });
    return { ok: true };
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
    let out;
    try {
        out = handle(JSON.parse(line));
    } catch (e) {
        out = { ok: false, error: String((e && e.message) || e) };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
});
rl.on("close", () => process.exit(0));
