// The price ticker's page in TypeScript: connect-es's generated client over the keepalive
// transport. The same hooks as the Rust page (window.__prices), for the same browser test.

import { createClient } from "@connectrpc/connect";
import { keepaliveTransport, keepOpen, type StateInfo } from "keepalive-client";
import { Prices } from "./gen/prices/v1/prices_pb";
import type { PriceTick } from "./gen/prices/v1/prices_pb";

const query = new URLSearchParams(location.search);
const ms = (name: string, fallback: number) => Number(query.get(name) ?? fallback);

const transport = await keepaliveTransport({
  keepaliveTimeMs: ms("keepaliveTimeMs", 10_000),
  keepaliveTimeoutMs: ms("keepaliveTimeoutMs", 20_000),
  backoffInitialMs: 500,
  retry: { "prices.v1.Prices/Quote": { initialBackoffMs: 50 } },
});
const prices = createClient(Prices, transport);

const seen = { state: "IDLE", changedAt: 0, ticks: [] as number[] };
const text = (id: string, value: string) => {
  const e = document.getElementById(id);
  if (e) {
    e.textContent = value;
    if (id === "state") e.className = value;
  }
};

transport.onState((s: StateInfo) => {
  seen.state = s.state;
  seen.changedAt = performance.now();
  text("state", s.state);
});

keepOpen(
  transport,
  (resume, signal) => prices.watch({ symbol: "ACME", resume }, { signal }),
  (tick: PriceTick) => {
    seen.ticks.push(Number(tick.sequence));
    text("count", String(seen.ticks.length));
    text("price", (Number(tick.priceMicros) / 1e6).toFixed(2));
  },
);

declare global {
  interface Window {
    __prices: unknown;
  }
}

window.__prices = {
  state: () => ({ state: seen.state, changedAt: seen.changedAt }),
  ticks: () => seen.ticks.slice(),
  now: () => performance.now(),
  stats: () => {
    const s = transport.stats();
    return {
      reconnects: s.reconnects,
      resumes: s.resumes,
      gaps: s.gaps,
      duplicatesDropped: s.duplicatesDropped,
      ready: s.state === "READY",
    };
  },
  quote: async (symbol: string) => {
    try {
      const r = await prices.quote({ symbol });
      return { sequence: Number(r.tick?.sequence), priceMicros: Number(r.tick?.priceMicros) };
    } catch (e) {
      return { error: String(e) };
    }
  },
  history: (symbol: string, last: number) =>
    new Promise((resolve) => {
      const ticks: number[] = [];
      const stream = keepOpen(
        transport,
        (resume, signal) => prices.history({ symbol, last, resume }, { signal }),
        (tick: PriceTick) => ticks.push(Number(tick.sequence)),
      );
      stream.onEnd((end) => resolve({ ticks, end: end === undefined ? "ok" : String(end.code) }));
    }),
};
