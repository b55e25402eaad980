from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_api_key_expiry')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='ContactToken',
            index=Index(fields=['expires_at']),
        ),
    ]
