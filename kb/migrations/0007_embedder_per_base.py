"""Embeddings of any dimension, one HNSW index per dimension, and the embedder of each knowledge base."""

import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models

from kb.vector_index import create_sql, index_name

SHIPPED_DIMENSIONS = (384, 512)


def existing_bases_keep_their_embedder(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Bases from before this migration were embedded by DOCENT_EMBED_MODEL, or by all-MiniLM-L6-v2 when unset.
    KnowledgeBase = apps.get_model("kb", "KnowledgeBase")
    KnowledgeBase.objects.filter(embedder="").update(embedder=settings.DOCENT_EMBED_MODEL or "all-MiniLM-L6-v2")


class Migration(migrations.Migration):
    dependencies = [("kb", "0006_postings")]

    operations = [
        migrations.AddField(
            model_name="knowledgebase",
            name="embedder",
            field=models.CharField(blank=True, default="", max_length=300),
        ),
        migrations.AddField(
            model_name="knowledgebase",
            name="next_embedder",
            field=models.CharField(blank=True, default="", max_length=300),
        ),
        migrations.RunPython(existing_bases_keep_their_embedder, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="chunk", name="chunk_embedding_hnsw"),
        migrations.AlterField(
            model_name="chunk",
            name="embedding",
            field=pgvector.django.vector.VectorField(),
        ),
        migrations.AddField(
            model_name="chunk",
            name="next_embedding",
            field=pgvector.django.vector.VectorField(blank=True, null=True),
        ),
        *[
            migrations.RunSQL(create_sql(d), f"DROP INDEX IF EXISTS {index_name(d)}")
            for d in SHIPPED_DIMENSIONS
        ],
    ]
