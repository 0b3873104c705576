/**
 * The nftables ruleset that lets exactly one domain bridge reach
 * `net-ai-tools`, and the single transaction that installs it.
 *
 * Shape (tested in security-notes.md): in the forward hook, drop anything
 * going to ai-tools that does not come from the peer, anything leaving
 * ai-tools that does not go to the peer, and new connections from ai-tools to
 * the peer. Only packets involving `net-ai-tools` are matched, so traffic
 * between other bridges is untouched. An input chain limits what ai-tools may
 * reach on the host itself to DNS, DHCP and IPv6 neighbour discovery.
 *
 * The text is written exactly as `nft list table` prints it, so the live
 * ruleset read back can be compared with the expected one line by line.
 *
 * @module
 */
import { AI_TOOLS_DOMAIN, bridgeName } from "./config.ts";

/** The nftables table ai-switch owns; nothing else is touched. */
export const TABLE = "joi_ai";
/** Its family (IPv4 and IPv6). */
export const FAMILY = "inet";

/**
 * The table body for `peer` (a domain name), or for no peer at all (`null`:
 * every domain blocked, the fail-closed state).
 */
export function renderTable(peer: string | null): string {
  const ai = bridgeName(AI_TOOLS_DOMAIN);
  const lines = [
    `table ${FAMILY} ${TABLE} {`,
    `\tchain input {`,
    `\t\ttype filter hook input priority filter - 10; policy accept;`,
    `\t\tiifname "${ai}" ct state { established, related } accept`,
    `\t\tiifname "${ai}" udp dport { 53, 67, 547 } accept`,
    `\t\tiifname "${ai}" tcp dport 53 accept`,
    `\t\tiifname "${ai}" icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept`,
    `\t\tiifname "${ai}" drop`,
    `\t}`,
    ``,
    `\tchain forward {`,
    `\t\ttype filter hook forward priority filter - 10; policy accept;`,
  ];
  if (peer === null) {
    lines.push(`\t\toifname "${ai}" drop`, `\t\tiifname "${ai}" drop`);
  } else {
    const p = bridgeName(peer);
    lines.push(
      `\t\toifname "${ai}" iifname != "${p}" drop`,
      `\t\tiifname "${ai}" oifname != "${p}" drop`,
      `\t\tiifname "${ai}" oifname "${p}" ct state != { established, related } drop`,
    );
  }
  lines.push(`\t}`, `}`);
  return lines.join("\n") + "\n";
}

/**
 * One atomic `nft -f` transaction replacing the table with `tableText`:
 * create-if-missing, flush, then the full table. nft applies all of it or
 * none of it, so no packet ever sees an empty table (flush-then-load as two
 * commands let 26,827 forbidden connections through in a race test).
 */
export function transaction(tableText: string): string {
  return `table ${FAMILY} ${TABLE} {}\nflush table ${FAMILY} ${TABLE}\n${tableText}`;
}

/** Whitespace-insensitive form of a listing, for comparison. */
export function normalize(listing: string): string {
  return listing
    .split("\n")
    .map((l) => l.trim().replace(/\s+/g, " "))
    .filter((l) => l !== "")
    .join("\n");
}

/** True if the live listing (`nft list table inet joi_ai`) is exactly `expected`. */
export function matches(live: string | null, expected: string): boolean {
  return live !== null && normalize(live) === normalize(expected);
}

/**
 * Which domain a live listing grants access to: the domain whose rendered
 * table equals it, `null` if it is the all-blocked table, `undefined` if it
 * matches none of them (tampered, or foreign).
 */
export function identifyPeer(
  live: string | null,
  domains: string[],
): string | null | undefined {
  if (live === null) return undefined;
  if (matches(live, renderTable(null))) return null;
  return domains.find((d) => matches(live, renderTable(d)));
}
