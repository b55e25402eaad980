from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_hot_path')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Contact',
            name='email_suppressed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        # Contacts suppressed by the list or a bounce before this column existed (their
        # latest suppression event is an EMAIL one) move to it: suppressed for email only.
        ops.RunSQL(
            "UPDATE contact SET email_suppressed_at = suppressed_at, suppressed_at = NULL "
            "WHERE suppressed_at IS NOT NULL AND (SELECT e.channel FROM consent_event e "
            "WHERE e.contact_id = contact.id AND e.action IN ('SUPPRESSED', 'UNSUPPRESSED') "
            "ORDER BY e.id DESC LIMIT 1) = 'EMAIL'",
            reverse_sql="UPDATE contact SET suppressed_at = email_suppressed_at "
                        "WHERE email_suppressed_at IS NOT NULL AND suppressed_at IS NULL",
        ),
    ]
