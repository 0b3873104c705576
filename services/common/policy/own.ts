/**
 * Safe lookups in the mappings of a policy.
 *
 * Policy mappings are plain objects: `allowed_channel_users["constructor"]`
 * would return `Object`, a truthy function, not "no such channel". Look keys
 * that come from a request (a channel name, a phone number) up with
 * {@link own}, which only sees the file's own entries.
 *
 * @module
 */

/** The entry `key` of `record` if the policy defines it, else `undefined`. */
export function own<V>(record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
