/**
 * The error an ingest step throws for bad input: it names the field, and
 * carries the HTTP status and contract error code the endpoint answers with.
 *
 * @module
 */
import type { ErrorCode, ErrorStatus } from "../../common/wire/envelope.ts";

/** Bad input on the ingest path, answered with `status` and `code`. */
export class IngestError extends Error {
  /** Contract error code. */
  readonly code: ErrorCode;
  /** HTTP status. */
  readonly status: ErrorStatus;
  /** The offending field (`data.readings[3].value`), when there is one. */
  readonly field: string | undefined;
  constructor(
    message: string,
    options: { code?: ErrorCode; status?: ErrorStatus; field?: string } = {},
  ) {
    super(options.field ? `${options.field}: ${message}` : message);
    this.name = "IngestError";
    this.code = options.code ?? "invalid_request";
    this.status = options.status ?? 400;
    this.field = options.field;
  }
}
