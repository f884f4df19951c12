/**
 * Client for an OpenAI-compatible embeddings endpoint (`SLUICE_EMBEDDINGS_URL`): OpenAI, vLLM, llama.cpp,
 * Ollama's OpenAI API, text-embeddings-inference, LiteLLM, …
 */
import { invalidResponse, postJson } from './http-classify.js';

export interface EmbeddingsClientOptions {
  /** Base URL; see {@link embeddingsEndpoint} for how it becomes the request URL. */
  url: string;
  /** Sent as `model`. When unset the field is left out: single-model servers do not need it. */
  model?: string;
  /** Sent as `Authorization: Bearer …`. */
  apiKey?: string;
  /** Per request, headers and body together. Default 60 s. */
  timeoutMs?: number;
  /** Inputs per request (default 64): keeps requests under servers' batch limits. */
  batchSize?: number;
  fetch?: typeof fetch;
}

export const DEFAULT_EMBEDDINGS_TIMEOUT_MS = 60_000;
export const DEFAULT_EMBEDDINGS_BATCH_SIZE = 64;

/**
 * The request URL for a configured base URL. Rule: trailing slashes are dropped; a URL whose path already
 * ends in `/embeddings` is used as it is; one ending in `/v1` gets `/embeddings`; anything else gets
 * `/v1/embeddings`. So `http://h:8000`, `http://h:8000/`, `http://h:8000/v1` and `http://h:8000/v1/embeddings`
 * all mean `http://h:8000/v1/embeddings`, and a proxy prefix is kept (`http://h/openai` →
 * `http://h/openai/v1/embeddings`). Query strings are kept.
 */
export function embeddingsEndpoint(base: string): string {
  const url = new URL(base);
  const path = url.pathname.replace(/\/+$/, '');
  if (/\/embeddings$/.test(path)) url.pathname = path;
  else if (/\/v1$/.test(path)) url.pathname = `${path}/embeddings`;
  else url.pathname = `${path}/v1/embeddings`;
  return url.toString();
}

export class EmbeddingsClient {
  readonly endpoint: string;
  readonly model: string | undefined;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly fetchFn: typeof fetch | undefined;

  constructor(options: EmbeddingsClientOptions) {
    this.endpoint = embeddingsEndpoint(options.url);
    this.model = options.model;
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_EMBEDDINGS_TIMEOUT_MS;
    this.batchSize = Math.max(1, options.batchSize ?? DEFAULT_EMBEDDINGS_BATCH_SIZE);
    this.fetchFn = options.fetch;
  }

  /**
   * One embedding per input, in input order. Inputs go out in batches of `batchSize`, one request after the
   * other (a unit's chunks are few; parallel requests would only earn more 429s). Throws classified errors
   * (src/extractors/http-classify.ts); a failed batch fails the whole call, and the unit is retried as a whole.
   */
  async embed(inputs: readonly string[], signal?: AbortSignal): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < inputs.length; i += this.batchSize) {
      const batch = inputs.slice(i, i + this.batchSize);
      out.push(...(await this.embedBatch(batch, signal)));
    }
    return out;
  }

  private async embedBatch(input: string[], signal: AbortSignal | undefined): Promise<number[][]> {
    const what = `embeddings endpoint ${this.endpoint}`;
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const body = this.model === undefined ? { input } : { model: this.model, input };
    const { status, json } = await postJson(this.endpoint, body, { what, headers, timeoutMs: this.timeoutMs, signal, fetch: this.fetchFn });
    return parseEmbeddings(what, json, input.length, status);
  }
}

/** Checks `{data: [{embedding: number[], index?}]}` and returns the vectors in input order. */
function parseEmbeddings(what: string, json: unknown, expected: number, status: number): number[][] {
  const data = (json as { data?: unknown } | null)?.data;
  if (typeof json !== 'object' || json === null || !Array.isArray(data)) {
    throw invalidResponse(what, 'expected a JSON object with a "data" array', status);
  }
  if (data.length !== expected) throw invalidResponse(what, `expected ${expected} embeddings, got ${data.length}`, status);
  const out: (number[] | undefined)[] = new Array(expected);
  let dims: number | undefined;
  data.forEach((item: unknown, position) => {
    const entry = item as { embedding?: unknown; index?: unknown } | null;
    const embedding = entry?.embedding;
    if (!Array.isArray(embedding) || embedding.length === 0 || !embedding.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw invalidResponse(what, `data[${position}].embedding is not a non-empty array of finite numbers`, status);
    }
    if (dims !== undefined && embedding.length !== dims) {
      throw invalidResponse(what, `data[${position}].embedding has ${embedding.length} dimensions, earlier ones ${dims}`, status);
    }
    dims = embedding.length;
    // OpenAI sends `index`; servers that leave it out answer in input order.
    const index = entry?.index === undefined ? position : entry.index;
    if (!Number.isSafeInteger(index) || (index as number) < 0 || (index as number) >= expected || out[index as number]) {
      throw invalidResponse(what, `data[${position}].index ${JSON.stringify(index)} is out of range or repeated`, status);
    }
    out[index as number] = embedding as number[];
  });
  return out as number[][];
}
