/**
 * The outbox: the one durable way out to the mesh.
 *
 * @module
 */
export * from "./message.ts";
export * from "./store.ts";
export * from "./outbox.ts";
export * from "./mesh_transport.ts";
