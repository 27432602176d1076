"""/explain: curated concept notes about LLMs and real attention heatmaps of Guru's own model.

`concepts/*.md` are the notes; `kb` keeps them in Guru's reserved knowledge base (guild 0,
through core.rag's Ingestor) and `answer` answers questions from them like /ask, refusing
questions outside the curriculum; `topics` reads their titles and links; `attention` extracts a
token x token attention map from the loaded model and `heatmap` renders it as a PNG.
"""
