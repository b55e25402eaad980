from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from prefcenter.models.enums import Channel, Source
from prefcenter.models.mail import MailKind, MailStatus, OptBackInStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_webhooks')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OptBackInRequest',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='opt_back_in_requests', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='opt_back_in_requests', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='opt_back_in_requests', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('status', fields.CharEnumField(default=OptBackInStatus.PENDING, description='PENDING: PENDING\nCONFIRMED: CONFIRMED\nEXPIRED: EXPIRED', enum_type=OptBackInStatus, max_length=16)),
                ('source', fields.CharEnumField(description='PREFERENCE_CENTER: PREFERENCE_CENTER\nEMAIL_LINK: EMAIL_LINK\nONE_CLICK: ONE_CLICK\nSMS_KEYWORD: SMS_KEYWORD\nADMIN: ADMIN\nAPI: API\nIMPORT: IMPORT\nPARTICIPATION_FORM: PARTICIPATION_FORM', enum_type=Source, max_length=32)),
                ('requested_by', fields.CharField(max_length=200)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_mail_at', fields.DatetimeField(description='When the confirmation email was last queued (a repeated request re-sends, rarely).', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'opt_back_in_request', 'app': 'models', 'indexes': [Index(fields=['contact', 'status']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'A pending (double opt-in) request to lift an opt-out, confirmed from an emailed link.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxMail',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='mail', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='mail', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', description='The scope the mail is about (its unsubscribe header points there).', db_constraint=True, to_field='id', related_name='mail', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='OPT_BACK_IN_REQUEST: OPT_BACK_IN_REQUEST\nOPT_OUT_CONFIRMATION: OPT_OUT_CONFIRMATION', enum_type=MailKind, max_length=32)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('data', fields.JSONField(default=dict, description='Kind-specific references: ``requestId`` or ``eventId``.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=MailStatus.PENDING, description='PENDING: PENDING\nSENDING: SENDING\nSENT: SENT\nHELD: HELD\nFAILED: FAILED\nCANCELLED: CANCELLED', enum_type=MailStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('claim_token', fields.CharField(null=True, description='The claim of the worker sending it; a claim past ``claimed_until`` may be taken over.', max_length=64)),
                ('claimed_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(null=True, max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mail_outbox', 'app': 'models', 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One email to send. Claimed atomically by a worker; marked sent after success.'},
            bases=['Model'],
        ),
    ]
