from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from prefcenter.models.sms import SmsReviewStatus, UnroutedReason, UnroutedStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_mail')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsNumber',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='sms_numbers', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='sms_numbers', on_delete=OnDelete.RESTRICT)),
                ('number', fields.CharField(unique=True, max_length=20)),
                ('auth_token', fields.CharField(max_length=256)),
                ('account_sid', fields.CharField(null=True, db_index=True, description='The provider account (Twilio ``AccountSid``); lets texts to numbers not registered', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('token_updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_number', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A sending phone number (E.164) owned by exactly one scope of one tenant.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SmsReview',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='sms_reviews', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='sms_reviews', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='sms_reviews', on_delete=OnDelete.CASCADE)),
                ('from_number', fields.CharField(max_length=32)),
                ('to_number', fields.CharField(max_length=32)),
                ('body', fields.TextField(description='The exact body received.', unique=False)),
                ('message_sid', fields.CharField(null=True, unique=True, max_length=64)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('due_on', fields.DateField()),
                ('status', fields.CharEnumField(default=SmsReviewStatus.PENDING, description='PENDING: PENDING\nOPTED_OUT: OPTED_OUT\nDISMISSED: DISMISSED', enum_type=SmsReviewStatus, max_length=16)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolved_by', fields.CharField(null=True, max_length=200)),
                ('note', fields.CharField(null=True, max_length=500)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', null=True, description='The opt-out an accepted review wrote (null when dismissed or already out).', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'sms_review', 'app': 'models', 'indexes': [Index(fields=['tenant', 'status', 'scope_path'])], 'pk_attr': 'id', 'table_description': "A text that likely revokes consent in other words, queued for an admin's decision."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UnroutedSms',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', null=True, db_constraint=True, to_field='id', related_name='unrouted_sms', on_delete=OnDelete.CASCADE)),
                ('sms_number', fields.ForeignKeyField('models.SmsNumber', source_field='sms_number_id', null=True, db_constraint=True, to_field='id', related_name='unrouted', on_delete=OnDelete.SET_NULL)),
                ('reason', fields.CharEnumField(description='UNKNOWN_NUMBER: UNKNOWN_NUMBER\nBAD_SIGNATURE: BAD_SIGNATURE\nINVALID_SENDER: INVALID_SENDER', enum_type=UnroutedReason, max_length=20)),
                ('verified', fields.BooleanField(default=False, description='Whether the signature verified with a token of ``tenant``.')),
                ('kind', fields.CharField(description='What the body is under the default keyword rules: STOP, START, HELP, REVOCATION, OTHER.', max_length=16)),
                ('from_number', fields.CharField(max_length=64)),
                ('to_number', fields.CharField(max_length=64)),
                ('body', fields.TextField(unique=False)),
                ('message_sid', fields.CharField(null=True, unique=True, max_length=64)),
                ('account_sid', fields.CharField(null=True, max_length=64)),
                ('url', fields.CharField(max_length=2000)),
                ('signature', fields.CharField(default='', max_length=200)),
                ('algorithm', fields.CharField(default='', max_length=16)),
                ('params', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=UnroutedStatus.PENDING, description='PENDING: PENDING\nPROCESSED: PROCESSED\nDISMISSED: DISMISSED', enum_type=UnroutedStatus, max_length=16)),
                ('outcome', fields.CharField(null=True, max_length=500)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolved_by', fields.CharField(null=True, max_length=200)),
            ],
            options={'table': 'sms_unrouted', 'app': 'models', 'indexes': [Index(fields=['to_number', 'status']), Index(fields=['tenant', 'status'])], 'pk_attr': 'id', 'table_description': 'An inbound text that could not be applied when it arrived, kept so it is never lost.'},
            bases=['Model'],
        ),
    ]
