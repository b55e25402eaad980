from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_sms')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ApiKey',
            name='expires_at',
            field=fields.DatetimeField(null=True, description='After this the key is refused (``EXPIRED``); null: until revoked.', auto_now=False, auto_now_add=False),
        ),
    ]
