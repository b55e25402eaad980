from tortoise import migrations
from tortoise import fields

from prefcenter.migration_ops import AlterFieldNotOnSqlite

class Migration(migrations.Migration):
    dependencies = [('models', '0011_senders_followup')]

    initial = False

    operations = [
        # Only the default changes (Tortoise applies it in Python): nothing for SQLite.
        AlterFieldNotOnSqlite(
            model_name='Contact',
            name='locale',
            field=fields.CharField(default='', description='Empty when not known: the language then comes from the browser or the scope (issue 15).', max_length=35),
        ),
    ]
