// The run lifecycle, driven through openapi-fetch with the types that
// openapi-typescript generated from our spec (schema.d.ts), against a live
// server. test_openapi_generators.py compiles it with `tsc --strict` (the type
// errors are the point: they show what the spec makes a TypeScript user write)
// and runs the emitted JS with node.
//
// Reads GRIOT_URL, GRIOT_API_KEY, GRIOT_CONTRACT_ID; argv[2] is the report
// path. Every step adds what it saw to the report, written even when a later
// step fails, so the tests can tell which step broke.

import { writeFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ErrorBody = components["schemas"]["Error"];
type Run = components["schemas"]["Run"];

// Compile-time equality: the error openapi-fetch hands back must be exactly
// the Error schema, not `unknown` or a union with something else.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function fail(step: string, status: number, error: ErrorBody | undefined): never {
  throw new Error(`${step}: HTTP ${status} ${JSON.stringify(error)}`);
}

const report: Record<string, unknown> = {};

async function flow(): Promise<void> {
  const baseUrl = env("GRIOT_URL");
  const contractId = env("GRIOT_CONTRACT_ID");
  const writer = createClient<paths>({ baseUrl, headers: { "X-API-Key": env("GRIOT_API_KEY") } });
  const reader = createClient<paths>({ baseUrl });

  // Create, with an Idempotency-Key, then replay the same request.
  const key = crypto.randomUUID();
  const body: components["schemas"]["CreateRunRequest"] = {
    contract_id: contractId,
    pipeline_name: "generated-typescript",
    status: "running",
  };
  const created = await writer.POST("/api/v1/runs", { params: { header: { "Idempotency-Key": key } }, body });
  if (!created.data) fail("create_run", created.response.status, created.error);
  const run: Run = created.data;
  report.create = { status_code: created.response.status, id: run.id, status: run.status };
  const replay = await writer.POST("/api/v1/runs", { params: { header: { "Idempotency-Key": key } }, body });
  if (!replay.data) fail("create_run replay", replay.response.status, replay.error);
  report.replay = {
    status_code: replay.response.status,
    id: replay.data.id,
    replayed_header: replay.response.headers.get("idempotent-replayed"),
  };

  // Read it without a key, keep its ETag, and patch with If-Match.
  const got = await reader.GET("/api/v1/runs/{run_id}", { params: { path: { run_id: run.id } } });
  if (!got.data) fail("get_run", got.response.status, got.error);
  const etag = got.response.headers.get("etag") ?? "";
  report.get = { status_code: got.response.status, version: got.data.version, etag };
  const patched = await writer.PATCH("/api/v1/runs/{run_id}", {
    params: { path: { run_id: run.id }, header: { "If-Match": etag } },
    body: { metadata: { rows_processed: 50000 } },
  });
  if (!patched.data) fail("update_run with If-Match", patched.response.status, patched.error);
  report.patch = { status_code: patched.response.status, version: patched.data.version, metadata: patched.data.metadata };
  // The same If-Match again names a version the run has left: 412, typed.
  const stale = await writer.PATCH("/api/v1/runs/{run_id}", {
    params: { path: { run_id: run.id }, header: { "If-Match": etag } },
    body: { metadata: { late: true } },
  });
  if (!stale.error) throw new Error(`update_run with a stale If-Match: HTTP ${stale.response.status}, no error`);
  report.stale_if_match = { status_code: stale.response.status, code: stale.error.detail.code };

  // List by contract, and by a plain date (`start_date=2024-01-15`, as in the README).
  const listed = await reader.GET("/api/v1/runs", { params: { query: { contract_id: contractId } } });
  if (!listed.data) fail("list_runs", listed.response.status, listed.error);
  const startedOn = run.started_at.slice(0, 10); // the server sends UTC with a Z
  const dated = await reader.GET("/api/v1/runs", { params: { query: { contract_id: contractId, start_date: startedOn } } });
  if (!dated.data) fail("list_runs by start_date", dated.response.status, dated.error);
  report.list = {
    status_code: listed.response.status,
    ids: listed.data.items.map((item) => item.id),
    ids_since_start_day: dated.data.items.map((item) => item.id),
  };

  // A validation linked to the run, and the contract's stats.
  const recorded = await writer.POST("/api/v1/validations", {
    body: {
      contract_id: contractId,
      run_id: run.id,
      status: "failed",
      errors: [{ code: "null_values", message: "email has 12 nulls", path: "email", row_count: 12 }],
    },
  });
  if (!recorded.data) fail("record_validation", recorded.response.status, recorded.error);
  report.validation = {
    status_code: recorded.response.status,
    id: recorded.data.id,
    run_id: recorded.data.run_id ?? null,
    status: recorded.data.status,
  };
  const stats = await reader.GET("/api/v1/validations/stats/{contract_id}", {
    params: { path: { contract_id: contractId }, query: { days: 30, granularity: "day" } },
  });
  if (!stats.data) fail("get_validation_stats", stats.response.status, stats.error);
  report.stats = {
    status_code: stats.response.status,
    total: stats.data.totals.total,
    failed: stats.data.totals.failed,
    error_codes: stats.data.common_errors.map((common) => common.code),
  };

  // Complete the run, then try to set it back to running: 409, typed.
  const done = await writer.PATCH("/api/v1/runs/{run_id}", {
    params: { path: { run_id: run.id } },
    body: { status: "completed" },
  });
  if (!done.data) fail("complete", done.response.status, done.error);
  report.complete = { status_code: done.response.status, status: done.data.status };
  const back = await writer.PATCH("/api/v1/runs/{run_id}", {
    params: { path: { run_id: run.id } },
    body: { status: "running" },
  });
  const errorIsTheErrorSchema: Equals<NonNullable<typeof back.error>, ErrorBody> = true;
  if (!back.error) throw new Error(`update_run back to running: HTTP ${back.response.status}, no error`);
  const conflict: ErrorBody = back.error;
  // Compared with a member of the ErrorCode union: a typo or a code
  // missing from the spec fails to compile.
  const isInvalidTransition = conflict.detail.code === "INVALID_TRANSITION";
  report.conflict = {
    status_code: back.response.status,
    model: errorIsTheErrorSchema ? "Error" : "other",
    code: conflict.detail.code,
    is_invalid_transition: isInvalidTransition,
    message: conflict.detail.message,
  };
}

flow()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  })
  .finally(() => {
    writeFileSync(process.argv[2], JSON.stringify(report, null, 2));
  });
