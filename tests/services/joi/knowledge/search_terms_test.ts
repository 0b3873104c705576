import assert from "node:assert/strict";
import { MAX_SEARCH_TERMS, searchTerms } from "../../../../services/joi/knowledge/search_terms.ts";

Deno.test("search terms: a question keeps its subject, not its function words", () => {
  assert.equal(searchTerms("Joi, where is the spare key?"), "joi spare key");
  assert.equal(searchTerms("When is the boiler serviced?"), "boiler serviced");
  assert.equal(searchTerms("Kde je náhradný kľúč, prosím?"), "náhradný kľúč");
  assert.equal(searchTerms("KOTOL kotol Kotol"), "kotol");
});

Deno.test("search terms: nothing worth searching gives the empty string", () => {
  for (const text of ["ok", "Okay.", "?", "👍", "is it?", "a 1 2", ""]) {
    assert.equal(searchTerms(text), "", text);
  }
});

Deno.test("search terms: bounded, and only letters and digits reach joi-retrieve", () => {
  const many = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
  assert.equal(searchTerms(many).split(" ").length, MAX_SEARCH_TERMS);
  assert.match(searchTerms("a;id $(id) `id` a|b ../etc/shadow"), /^[\p{L}\p{N}\p{M} ]*$/u);
});
