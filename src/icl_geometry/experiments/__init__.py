"""One module per chapter, named by the chapter's slug: `run(config, checkpoint=None)` returns the rows,
`CLAIMS` declares what the chapter tests, `claim_values(rows, config)` computes every claim from the rows.
Imports `core`, `llm`, `tasks` and `toys`, never another experiment or the book machinery."""
