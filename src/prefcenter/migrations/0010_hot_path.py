from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_senders_toolkit')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ApiKey',
            name='rate_limit_per_minute',
            field=fields.IntField(null=True, description="Requests per minute this key may make on /graphql; null: the server's default"),
        ),
    ]
