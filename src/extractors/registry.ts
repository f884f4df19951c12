import { z } from 'zod';
import type { BucketSchema } from '../buckets/bucket-schema.js';
import { EmbeddingsClient } from './embeddings-client.js';
import type { Extractor, ExtractorRegistry } from './extractor.js';
import { createPassthroughExtractor } from './passthrough-extractor.js';
import { createTextExtractor } from './text-extractor.js';
import { createWebhookExtractor } from './webhook-extractor.js';

export interface ExtractorRegistryOptions {
  /** From SLUICE_EMBEDDINGS_URL / _MODEL / _API_KEY; unset → text_extractor uses the offline embedding. */
  embeddings?: { url: string; model?: string; apiKey?: string; timeoutMs?: number };
  /** SLUICE_ALLOW_PRIVATE_URLS: lets webhook_extractor reach loopback and private addresses. */
  allowPrivateUrls: boolean;
  fetch?: typeof fetch;
}

/** The extractors this server runs, keyed by id (`text_extractor_v1`). */
export function createExtractorRegistry(opts: ExtractorRegistryOptions): ExtractorRegistry {
  const embeddings = opts.embeddings ? new EmbeddingsClient({ ...opts.embeddings, fetch: opts.fetch }) : undefined;
  const extractors: Extractor[] = [
    createTextExtractor({ embeddings }) as Extractor,
    createPassthroughExtractor() as Extractor,
    createWebhookExtractor({ allowPrivateUrls: opts.allowPrivateUrls, fetch: opts.fetch }) as Extractor,
  ];
  return new Map(extractors.map((e) => [e.id, e]));
}

const ICONS: Record<string, string> = {
  text_extractor: 'file-text',
  passthrough_extractor: 'arrow-right',
  webhook_extractor: 'webhook',
};

/** Mixpeek's FeatureExtractorResponseModel / UnifiedExtractorResponse for one extractor. */
export interface ExtractorDescription {
  feature_extractor_name: string;
  version: string;
  feature_extractor_id: string;
  description: string;
  icon: string;
  source: 'builtin';
  input_schema: Record<string, unknown>;
  output_schema: Record<string, unknown>;
  parameter_schema: Record<string, unknown> | null;
  supported_input_types: string[];
  max_inputs: Record<string, number>;
  default_parameters: Record<string, unknown>;
  costs: null;
  required_vector_indexes: null;
  required_payload_indexes: null;
  position_fields: string[];
}

/**
 * JSON Schema of the parameters as a client sends them (`io: 'input'`: defaults make fields optional).
 * Refinements are not representable and are left out; a transform or other unrepresentable part becomes
 * `{}` rather than throwing, and if the conversion fails anyway the schema is reported as null.
 */
function parameterJsonSchema(schema: z.ZodType): Record<string, unknown> | null {
  try {
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    delete json.$schema;
    return json;
  } catch {
    return null;
  }
}

/** Defaults of the top-level parameters, read from the JSON Schema (works even when required fields have none). */
function defaultParameters(parameterSchema: Record<string, unknown> | null): Record<string, unknown> {
  const props = (parameterSchema?.properties ?? {}) as Record<string, { default?: unknown }>;
  const out: Record<string, unknown> = {};
  for (const [name, prop] of Object.entries(props)) {
    if (prop && typeof prop === 'object' && 'default' in prop) out[name] = prop.default;
  }
  return out;
}

/** Bucket-style field definitions as a JSON Schema object (the catalogue speaks JSON Schema). */
function fieldsJsonSchema(fields: BucketSchema['properties']): Record<string, unknown> {
  const required = Object.entries(fields)
    .filter(([, f]) => f.required)
    .map(([name]) => name);
  return { type: 'object', properties: fields, ...(required.length > 0 ? { required } : {}) };
}

export function describeExtractor(e: Extractor): ExtractorDescription {
  const parameterSchema = parameterJsonSchema(e.parameters);
  const defaults = defaultParameters(parameterSchema);
  // Output fields for the default parameters; an extractor whose defaults do not validate (a required url)
  // is described with the raw defaults, which outputSchema implementations here do not depend on.
  const parsed = e.parameters.safeParse(defaults);
  const outputFields = e.outputSchema(parsed.success ? parsed.data : defaults);
  const inputNames = Object.keys(e.inputSchema);
  return {
    feature_extractor_name: e.name,
    version: e.version,
    feature_extractor_id: e.id,
    description: e.description,
    icon: ICONS[e.name] ?? 'box',
    source: 'builtin',
    input_schema: fieldsJsonSchema(e.inputSchema),
    output_schema: fieldsJsonSchema(outputFields),
    parameter_schema: parameterSchema,
    supported_input_types: [...e.supportedInputTypes],
    // One value per declared input field; extractors without declared inputs take any number of fields.
    max_inputs: Object.fromEntries(inputNames.map((n) => [n, 1])),
    default_parameters: defaults,
    costs: null,
    required_vector_indexes: null,
    required_payload_indexes: null,
    position_fields: [...e.positionFields],
  };
}
