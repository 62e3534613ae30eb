/**
 * keepalive-client: keepalive for gRPC-web calls from the browser, for connect-es.
 *
 * `keepaliveTransport()` is a connect-es `Transport` (gRPC-web, `@connectrpc/connect-web`
 * underneath) that emulates grpc-go's keepalive with heartbeats, notices a dead connection
 * within Time + Timeout, aborts every call in flight then (UNAVAILABLE), reconnects with
 * gRPC's backoff and retries the unary methods you declare (proposal A6). `keepOpen()`
 * keeps a server stream of the resume protocol (`keepalive/v1/resume.proto`) open across
 * reconnects: every event exactly once, in order; gaps reported, never silent.
 *
 * ```ts
 * import { createClient } from "@connectrpc/connect";
 * import { keepaliveTransport, keepOpen } from "keepalive-client";
 * import { Prices } from "./gen/prices/v1/prices_pb";
 *
 * const transport = await keepaliveTransport({
 *   baseUrl: "https://api.example",
 *   keepaliveTimeMs: 10_000,
 *   retry: { "prices.v1.Prices/Quote": { maxAttempts: 3 } },
 * });
 * const prices = createClient(Prices, transport);
 * const quote = await prices.quote({ symbol: "ACME" });
 * keepOpen(transport, (resume, signal) => prices.watch({ symbol: "ACME", resume }, { signal }),
 *   (tick) => render(tick));
 * transport.onState((s) => showBanner(s.state));
 * ```
 *
 * The keepalive state machine is the Rust one (the same as for Rust pages), compiled to
 * WebAssembly; this module only does the I/O through connect-es.
 */

import init, {
  KeepaliveChannel,
  type ChannelOptions,
  type ChannelStats,
  type KeepaliveStreamCall,
  type ResumePoint,
  type RetryPolicyInit,
  type StateInfo,
  type StreamEnd,
  type TimelineEntry,
} from "./keepalive_client.js";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

export type {
  ChannelOptions,
  ChannelStats,
  ResumePoint,
  RetryPolicyInit,
  StateInfo,
  StreamEnd,
  TimelineEntry,
};
export { KeepaliveChannel };

/** Options of `keepaliveTransport`: the channel's, and where things are. */
export interface KeepaliveTransportOptions extends ChannelOptions {
  /** The server's base URL, e.g. `"https://api.example"`. Default: the page's origin. */
  baseUrl?: string;
  /** Where this package's `.wasm` file is. Default: next to this module. */
  wasmUrl?: string | URL;
}

/** A connect-es `Transport` with keepalive. */
export interface KeepaliveTransport extends Transport {
  /** The channel underneath (heartbeats, state, the streams it keeps open). */
  readonly channel: KeepaliveChannel;
  /** The connectivity state now. */
  state(): StateInfo;
  /** The counters now. */
  stats(): ChannelStats;
  /** `f(state)` on every connectivity change. */
  onState(f: (state: StateInfo) => void): void;
  /** `f(stats)` when the counters change. */
  onStats(f: (stats: ChannelStats) => void): void;
  /** `f(entry)` for every keepalive event (state, loss, gap, resume, go-away, rtt…). */
  onTimeline(f: (entry: TimelineEntry) => void): void;
  /** Starts connecting (a probe heartbeat when nothing else is in flight). */
  connect(): void;
  /** Closes the channel: every call and stream is aborted. */
  close(): void;
}

let loaded: Promise<unknown> | undefined;

/** Loads the WebAssembly module once. */
function load(wasmUrl?: string | URL): Promise<unknown> {
  loaded ??= init(wasmUrl === undefined ? undefined : { module_or_path: wasmUrl });
  return loaded;
}

function lostError(channel: KeepaliveChannel): ConnectError {
  return new ConnectError(`connection lost (${channel.lossReason()})`, Code.Unavailable);
}

/**
 * `fetch` that reports every call to the channel: a call in flight is an active stream
 * for the keepalive, its headers and every chunk of its body are liveness, and the channel
 * aborts it (UNAVAILABLE) when it judges the connection lost.
 */
function trackedFetch(channel: KeepaliveChannel): typeof fetch {
  return async (input, init) => {
    const controller = new AbortController();
    const outer = init?.signal ?? undefined;
    const onOuter = () => controller.abort(outer?.reason);
    if (outer?.aborted) {
      controller.abort(outer.reason);
    } else {
      outer?.addEventListener("abort", onOuter, { once: true });
    }
    let lost = false;
    const id = channel.callStarted(() => {
      lost = true;
      controller.abort(lostError(channel));
    });
    let ended = false;
    const end = () => {
      if (!ended) {
        ended = true;
        channel.callEnded(id);
        outer?.removeEventListener("abort", onOuter);
      }
    };
    const failed = (e: unknown): unknown => {
      if (!lost && !outer?.aborted) {
        channel.callAnswered(false);
      }
      end();
      return lost ? lostError(channel) : e;
    };
    let response: Response;
    try {
      response = await fetch(input, { ...init, signal: controller.signal });
    } catch (e) {
      throw failed(e);
    }
    channel.callAnswered(!(response.status >= 502 && response.status <= 504));
    if (!response.body) {
      end();
      return response;
    }
    const reader = response.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        try {
          const r = await reader.read();
          if (r.done) {
            end();
            c.close();
            return;
          }
          channel.callBytes();
          c.enqueue(r.value);
        } catch (e) {
          c.error(failed(e));
        }
      },
      cancel(reason) {
        end();
        return reader.cancel(reason);
      },
    });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(ConnectError.from(signal.reason, Code.Canceled));
      },
      { once: true },
    );
  });
}

/**
 * A connect-es `Transport` with keepalive: `createClient(MyService, transport)` works
 * with any generated connect-es client; unary and server-streaming calls.
 */
export async function keepaliveTransport(
  options: KeepaliveTransportOptions = {},
): Promise<KeepaliveTransport> {
  const { baseUrl: base, wasmUrl, ...channelOptions } = options;
  await load(wasmUrl);
  const baseUrl = (base ?? globalThis.location?.origin ?? "").replace(/\/$/, "");
  const channel = new KeepaliveChannel(baseUrl, channelOptions);
  const grpcWeb = createGrpcWebTransport({ baseUrl, fetch: trackedFetch(channel) });
  return {
    channel,
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const retry = channel.retry(`/${method.parent.typeName}/${method.name}`);
      try {
        for (;;) {
          try {
            return await grpcWeb.unary(method, signal, timeoutMs, header, input, contextValues);
          } catch (e) {
            const err = ConnectError.from(e);
            const pushback = err.metadata.get("grpc-retry-pushback-ms") ?? undefined;
            const delay =
              retry !== undefined && !signal?.aborted
                ? retry.onFailure(err.code, pushback)
                : undefined;
            if (delay === undefined) {
              throw err;
            }
            await sleep(delay, signal);
          }
        }
      } finally {
        retry?.free();
      }
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return grpcWeb.stream(method, signal, timeoutMs, header, input, contextValues);
    },
    state: () => channel.state() as StateInfo,
    stats: () => channel.stats() as ChannelStats,
    onState: (f) => channel.onState(f),
    onStats: (f) => channel.onStats(f),
    onTimeline: (f) => channel.onTimeline(f),
    connect: () => channel.connect(),
    close: () => channel.close(),
  };
}

/** The frames of a resumable stream's message (its `oneof`, named `kind` by default). */
export type ResumeFrame<E> =
  | {
      case: "welcome";
      value: {
        nextSequence: bigint;
        streamHeartbeatIntervalMs: bigint;
        resumeToken: string;
        logId: string;
        server?: string;
      };
    }
  | { case: "event"; value: E }
  | { case: "heartbeat"; value: unknown }
  | { case: "gap"; value: { fromSequence: bigint; missed: bigint } }
  | { case: "goAway"; value: { reason: string; resumeToken: string } }
  | { case: undefined; value?: undefined };

/** Options of `keepOpen`. */
export interface KeepOpenOptions {
  /** Start after this sequence (what an earlier stream of the same events delivered). */
  afterSequence?: bigint;
  /** The log `afterSequence` refers to. */
  logId?: string;
}

/** A stream the transport keeps open. */
export interface KeptOpen {
  /** Stops keeping it open (its call is aborted). */
  close(): void;
  /** The last sequence delivered. */
  delivered(): bigint | undefined;
  /** Whether it is still kept open (not finished, not closed). */
  isOpen(): boolean;
  /** `f(end)` once the server ends it for good: `undefined` when it completed, else the status. */
  onEnd(f: (end: StreamEnd) => void): void;
}

/**
 * Keeps a server stream of the resume protocol open across reconnects. `open(resume,
 * signal)` makes one call (put `resume` in the request, pass `signal` in the call
 * options); `onEvent` gets every event exactly once, in order.
 */
export function keepOpen<E extends { sequence: bigint }>(
  transport: KeepaliveTransport,
  open: (resume: ResumePoint, signal: AbortSignal) => AsyncIterable<{ kind: ResumeFrame<E> }>,
  onEvent: (event: E) => void,
  options: KeepOpenOptions = {},
): KeptOpen {
  const run = async (resume: ResumePoint, call: KeepaliveStreamCall) => {
    const controller = new AbortController();
    call.onAbort(() =>
      controller.abort(new ConnectError("aborted by the keepalive channel", Code.Unavailable)),
    );
    try {
      for await (const message of open(resume, controller.signal)) {
        const frame = message.kind;
        switch (frame.case) {
          case "welcome":
            call.welcome(
              frame.value.nextSequence,
              Number(frame.value.streamHeartbeatIntervalMs),
              frame.value.resumeToken,
              frame.value.logId,
              frame.value.server,
            );
            break;
          case "event":
            if (call.event(frame.value.sequence)) {
              onEvent(frame.value);
            }
            break;
          case "gap":
            call.gap(frame.value.fromSequence, frame.value.missed);
            break;
          case "goAway":
            call.goAway(frame.value.resumeToken, frame.value.reason);
            return;
          default:
            call.heartbeat();
        }
      }
      call.completed();
    } catch (e) {
      if (!controller.signal.aborted) {
        const err = ConnectError.from(e);
        call.failed(err.code, err.rawMessage);
      }
    } finally {
      call.free();
    }
  };
  const stream = transport.channel.keepOpen(
    (resume: ResumePoint, call: KeepaliveStreamCall) => void run(resume, call),
    options.afterSequence,
    options.logId,
  );
  return {
    close: () => stream.close(),
    delivered: () => stream.delivered(),
    isOpen: () => stream.isOpen(),
    onEnd: (f) => stream.onEnd(f),
  };
}
