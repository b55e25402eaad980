from tortoise import migrations
from tortoise.migrations import operations as ops
from prefcenter.models.mail import MailKind
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_confirmed_opt_in')]

    initial = False

    # SQLite rebuilds mail_outbox for the two AlterFields and the rebuild drops its index;
    # the RunSQL after them puts it back (on PostgreSQL the index is kept: a no-op there).
    operations = [
        ops.AlterField(
            model_name='OutboxMail',
            name='contact',
            field=fields.ForeignKeyField('models.Contact', source_field='contact_id', null=True, description='The contact it goes to; null for an owner notice (the address is in ``data``).', db_constraint=True, to_field='id', related_name='mail', on_delete=OnDelete.CASCADE),
        ),
        ops.AlterField(
            model_name='OutboxMail',
            name='kind',
            field=fields.CharEnumField(description='OPT_BACK_IN_REQUEST: OPT_BACK_IN_REQUEST\nOPT_OUT_CONFIRMATION: OPT_OUT_CONFIRMATION\nOWNER_NOTICE: OWNER_NOTICE', enum_type=MailKind, max_length=32),
        ),
        ops.RunSQL(
            'CREATE INDEX IF NOT EXISTS "idx_mail_outbox_status_6a492c" '
            'ON "mail_outbox" ("status", "next_attempt_at")',
            reverse_sql='SELECT 1',
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='alert_email',
            field=fields.CharField(null=True, description="Where notices about this endpoint's trouble are mailed (the outbox); null: nowhere.", max_length=320),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='disable_warning_at',
            field=fields.DatetimeField(null=True, description='When the owner was warned it will be disabled (once per failing streak).', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='failing_notice_at',
            field=fields.DatetimeField(null=True, description='When the owner was told it is failing (once per failing streak).', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='failing_since',
            field=fields.DatetimeField(null=True, description='Since when every attempt has failed (null while healthy); probed one at a time then.', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, description='While failing: when the next probe may go (also set by a Retry-After answer).', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='send_slot_at',
            field=fields.DatetimeField(null=True, description='The send-rate bucket: each claim pushes it on by 1 / ``webhook_max_per_second``.', auto_now=False, auto_now_add=False),
        ),
    ]
