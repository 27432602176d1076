"""/explain: curated concept notes about LLMs and real attention heatmaps of Guru's own model.

`concepts/*.md` are the notes (later ingested into a reserved knowledge base by core.rag);
`topics` reads their titles and links; `attention` extracts a token x token attention map from
the loaded model and `heatmap` renders it as a PNG.
"""
