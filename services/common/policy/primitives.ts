/**
 * Shared zod building blocks of the policy schemas, each with a message that
 * names the bad value and the expected form.
 *
 * @module
 */
import { z } from "zod";

function shown(input: unknown): string {
  return typeof input === "string" ? JSON.stringify(input) : String(input);
}

/** Linux user and group names as `useradd` accepts them by default. */
export const UNIX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/** A Linux user or group name. */
export function unixName(what: string) {
  return z.string().regex(UNIX_NAME, {
    error: (iss) =>
      `${shown(iss.input)} is not a valid ${what} name (lowercase letters, digits, "_" and "-", ` +
      `starting with a letter or "_", at most 32 characters)`,
  });
}

/** Recipient ids and group names: they become channel names and folder names. */
export const ID = /^[a-z][a-z0-9_]{0,31}$/;

/** A recipient id, group name, tool name or channel name. */
export function identifier(what: string) {
  return z.string().regex(ID, {
    error: (iss) =>
      `${shown(iss.input)} is not a valid ${what} (lowercase letters, digits and "_", ` +
      `starting with a letter, at most 32 characters)`,
  });
}

/** A channel name such as `owner_private_dm` or `family_group`. */
export const channelName = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, {
  error: (iss) =>
    `${shown(iss.input)} is not a valid channel name (lowercase letters, digits and "_")`,
});

/** A count, limit or duration: a whole number >= 1. */
export const positiveInt = z.int().min(1);

/** A whole number >= 0. */
export const nonNegativeInt = z.int().min(0);

/** A TCP port. */
export const port = z.int().min(1).max(65535);

/** A non-empty string. */
export const nonEmpty = z.string().min(1);

/** `HH:MM`, 24-hour clock. */
export const hhmm = z.string().regex(/^(?:[01]\d|2[0-3]):[0-5]\d$/, {
  error: (iss) => `${shown(iss.input)} is not a time of day as HH:MM (00:00 to 23:59)`,
});

/** True when `name` is an IANA time zone this runtime knows. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** An IANA time zone name, checked with Intl.DateTimeFormat. */
export const timeZone = z.string().refine(isTimeZone, {
  error: (iss) =>
    `${shown(iss.input)} is not an IANA time zone name (e.g. "Europe/Bratislava", "UTC")`,
});

/**
 * Compiles a policy pattern: case-insensitive and Unicode-aware, as the policy
 * files say. Consumers use this so a pattern means the same at load and at use.
 */
export function compilePattern(pattern: string): RegExp {
  return new RegExp(pattern, "iu");
}

function regexError(pattern: string): string | undefined {
  try {
    compilePattern(pattern);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** A regular expression that compiles with {@link compilePattern}. */
export const regexPattern = z.string().min(1).superRefine((value, ctx) => {
  const err = regexError(value);
  if (err !== undefined) {
    ctx.addIssue({
      code: "custom",
      input: value,
      message: `${JSON.stringify(value)} is not a valid regular expression: ${err}`,
    });
  }
});

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** True for a dotted-quad IPv4 address. */
export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

/** An IPv4 address literal. */
export const ipv4 = z.string().regex(IPV4, {
  error: (iss) => `${shown(iss.input)} is not an IPv4 address (e.g. "10.42.0.10")`,
});

/** Parses `a.b.c.d` to a 32-bit number. */
export function ipv4ToInt(ip: string): number {
  return ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** An IPv4 CIDR block such as `10.42.0.0/24`. */
export const ipv4Cidr = z.string().refine((s) => {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  return m !== null && isIPv4(m[1]!) && Number(m[2]) <= 32;
}, { error: (iss) => `${shown(iss.input)} is not an IPv4 CIDR block (e.g. "10.42.0.0/24")` });

/** True when `ip` lies in `cidr`. */
export function inCidr(ip: string, cidr: string): boolean {
  const [base = "", bits = "32"] = cidr.split("/");
  const n = Number(bits);
  const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
  return ((ipv4ToInt(ip) & mask) >>> 0) === ((ipv4ToInt(base) & mask) >>> 0);
}

const HOSTNAME =
  /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** A DNS host name or an IPv4 address. */
export const hostOrIp = z.string().refine((s) => HOSTNAME.test(s) || isIPv4(s), {
  error: (iss) => `${shown(iss.input)} is not a host name or IPv4 address`,
});

/** DNS-safe label, as anklume requires for domain and machine names. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** A DNS-safe name (domains and machines of infra.yml). */
export function dnsName(what: string) {
  return z.string().max(63).regex(DNS_LABEL, {
    error: (iss) =>
      `${what} name ${shown(iss.input)} is not DNS-safe (lowercase letters, digits and "-", ` +
      `not starting or ending with "-")`,
  });
}

/** An absolute file system path without `..` segments. */
export const absolutePath = z.string().refine(
  (s) => s.startsWith("/") && !s.split("/").includes("..") && !s.includes("\0"),
  { error: (iss) => `${shown(iss.input)} is not an absolute path without ".." segments` },
);

/**
 * An absolute path that may stand in a program's sandbox flags and in a
 * systemd unit as it is: letters, digits and `._@+-/` only (a comma would
 * split a `--allow-read` list, a space a unit's directive).
 */
export const flagSafePath = absolutePath.refine((s) => /^\/[A-Za-z0-9._@+\/-]*$/.test(s), {
  error: (iss) =>
    `${shown(iss.input)} may only hold letters, digits and . _ @ + - / ` +
    `(it goes into the sandbox flags and the systemd units as it is)`,
});

/** True for a URL with the http: or https: scheme. */
export function isHttpUrl(s: string, schemes: readonly string[] = ["http:", "https:"]): boolean {
  try {
    const u = new URL(s);
    return schemes.includes(u.protocol) && u.hostname !== "";
  } catch {
    return false;
  }
}

/** An http:// or https:// URL. */
export const httpUrl = z.string().refine((s) => isHttpUrl(s), {
  error: (iss) => `${shown(iss.input)} is not an http:// or https:// URL`,
});
