// The WebSocket relay of @cloudflare/containers (0.3.7, dist/lib/container.js,
// Container.containerFetch), which the Sandbox SDK's wsConnect() goes through
// on its way to a container port: the upgrade is sent on to the container,
// and when it answers 101 both ends are accept()ed and relayed MESSAGE BY
// MESSAGE. So, as in production:
//   - pings and pongs do not cross: workerd answers a ping on each side
//     itself (the client's ping never reaches the server, the server's ping
//     is answered by the relay even when the client is gone or silent);
//   - a close is re-sent by the relay: 1005 and 1006 (a lost connection, a
//     server killed) become 1000, the reason is carried;
//   - an error on either side closes the other with 1011;
//   - an open WebSocket counts as an in-flight request (it keeps the
//     container awake: Container.isActivityExpired()).
// Kept line for line with the original where it matters (the event
// handlers); only the counters are this stand-in's, for the tests to read.

export const counters = { inflight: 0, relayed: 0 };

/**
 * What Container.containerFetch() does with the container's answer RES to a
 * WebSocket upgrade: a 101 with a webSocket is relayed through a new
 * WebSocketPair; anything else goes back as it is.
 */
export function relayResponse(res) {
  counters.inflight++;
  if (res.webSocket === null || res.webSocket === undefined) {
    counters.inflight--;
    return res;
  }
  counters.relayed++;
  // WebSocket response: proxy by accepting both sides and forwarding messages
  const containerWs = res.webSocket;
  const [client, server] = Object.values(new WebSocketPair());
  // Guard to ensure we only decrement inflight once per WebSocket,
  // since both close and error events can fire.
  let settled = false;
  const settleInflight = () => {
    if (!settled) {
      settled = true;
      counters.inflight = Math.max(0, counters.inflight - 1);
    }
  };
  // Accept both WebSocket ends
  containerWs.accept();
  server.accept();
  // Forward messages from client to container
  server.addEventListener("message", async (event) => {
    try {
      const data = event.data instanceof Blob ? await event.data.arrayBuffer() : event.data;
      containerWs.send(data);
    } catch {
      server.close(1011, "Failed to forward message to container");
    }
  });
  // Forward messages from container to client
  containerWs.addEventListener("message", async (event) => {
    try {
      const data = event.data instanceof Blob ? await event.data.arrayBuffer() : event.data;
      server.send(data);
    } catch {
      containerWs.close(1011, "Failed to forward message to client");
    }
  });
  // Forward close from client to container
  server.addEventListener("close", (event) => {
    settleInflight();
    // Codes 1005 (No Status Received) and 1006 (Abnormal Closure) are
    // reserved and cannot be sent in a close frame — fall back to 1000.
    const code = event.code === 1005 || event.code === 1006 ? 1000 : event.code;
    containerWs.close(code, event.reason);
  });
  // Forward close from container to client
  containerWs.addEventListener("close", (event) => {
    settleInflight();
    const code = event.code === 1005 || event.code === 1006 ? 1000 : event.code;
    server.close(code, event.reason);
  });
  // Forward errors
  server.addEventListener("error", () => {
    settleInflight();
    containerWs.close(1011, "Client WebSocket error");
  });
  containerWs.addEventListener("error", () => {
    settleInflight();
    server.close(1011, "Container WebSocket error");
  });
  return new Response(null, { status: res.status, webSocket: client, headers: res.headers });
}
