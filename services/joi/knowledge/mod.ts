/**
 * joi's knowledge: the folder table, the write path, the index writer, the
 * retrieve caller and the pinned retrieve command line.
 *
 * @module
 */
export * from "./folders.ts";
export * from "./markdown.ts";
export * from "./index_writer.ts";
export * from "./scan.ts";
export * from "./writer.ts";
export * from "./retrieve_argv.ts";
export * from "./caller.ts";
