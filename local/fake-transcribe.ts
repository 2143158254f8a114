// A fake of an OpenAI-compatible transcription endpoint, POST {base}/audio/transcriptions (multipart: file,
// model; answer {"text": ...}), for tests and `npm start` (TRANSCRIBE_URL). The text is deterministic, naming the
// file and its size, so a test can tell which voice note it came from; faults: error statuses and hangs.

export type TranscribeFault = { kind: "error"; status: number } | { kind: "hang" };

export interface TranscribeRequest {
  filename: string;
  size: number;
  model: string;
  authorization: string | null;
}

export interface FakeTranscribe {
  /** The base URL to set as TRANSCRIBE_URL (…/v1). */
  url: string;
  requests: TranscribeRequest[];
  /** Queues behaviours for the next requests, one each. */
  enqueue(...faults: TranscribeFault[]): void;
  close(): Promise<void>;
}

/** What the fake hears in a file. */
export function fakeTranscript(filename: string, size: number): string {
  return `voice note ${filename} (${size} bytes): hola, ¿cuánto cuesta el envío?`;
}

export function startFakeTranscribe(options: { port?: number } = {}): FakeTranscribe {
  const requests: TranscribeRequest[] = [];
  const queue: TranscribeFault[] = [];
  const closing = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen() {} },
    async (req) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/audio/transcriptions") {
        return Response.json({ error: { message: "not found" } }, { status: 404 });
      }
      const form = await req.formData();
      const file = form.get("file");
      if (!(file instanceof File)) {
        return Response.json({ error: { message: "file is required" } }, { status: 400 });
      }
      const request = {
        filename: file.name,
        size: file.size,
        model: String(form.get("model") ?? ""),
        authorization: req.headers.get("authorization"),
      };
      requests.push(request);
      const fault = queue.shift();
      if (fault?.kind === "hang") {
        await new Promise((resolve) => closing.signal.addEventListener("abort", resolve, { once: true }));
      }
      if (fault?.kind === "error" || fault?.kind === "hang") {
        return Response.json({ error: { message: "fake transcription failure" } }, {
          status: fault.kind === "error" ? fault.status : 503,
        });
      }
      return Response.json({ text: fakeTranscript(file.name, file.size) });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/v1`,
    requests,
    enqueue: (...faults) => void queue.push(...faults),
    close: async () => {
      closing.abort();
      await server.shutdown();
    },
  };
}

if (import.meta.main) {
  const fake = startFakeTranscribe({ port: Number(Deno.env.get("FAKE_TRANSCRIBE_PORT") ?? 54333) });
  console.log(JSON.stringify({ level: "info", msg: "fake transcription listening", url: fake.url }));
}
