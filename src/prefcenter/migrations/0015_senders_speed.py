from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# Issue 13: keyset pages of a tenant's contacts and ledger in id order (the streamed
# exports). Without them SQLite reads and sorts the whole tenant for every page.
# Indexes only: every decision means what it meant.


class Migration(migrations.Migration):
    dependencies = [('models', '0014_quiet_hours')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='ConsentEvent',
            index=Index(fields=['tenant', 'id']),
        ),
        ops.AddIndex(
            model_name='Contact',
            index=Index(fields=['tenant', 'id']),
        ),
    ]
