from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from prefcenter.models.enums import Action, ConsentStatus
from prefcenter.models.mail import RequestKind
from prefcenter.models.optin import QuestionStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

from prefcenter.migration_ops import AlterFieldNotOnSqlite



class Migration(migrations.Migration):
    dependencies = [('models', '0006_contact_token_expiry_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ConfirmationSend',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('address', fields.CharField(description='The address mailed, lower-cased.', max_length=320)),
                ('client_ip', fields.CharField(null=True, description='The client address of the request that caused it (null: not from the web).', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'confirmation_send', 'app': 'models', 'indexes': [Index(fields=['address', 'created_at']), Index(fields=['client_ip', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A confirmation mail queued (counted against the limits).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsentQuestion',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='consent_questions', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='consent_questions', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='consent_questions', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('phone', fields.CharField(description="The number the answer comes from (the contact's phone when asked).", max_length=20)),
                ('words', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(default=QuestionStatus.OPEN, description='OPEN: OPEN\nACCEPTED: ACCEPTED\nDECLINED: DECLINED', enum_type=QuestionStatus, max_length=16)),
                ('asked_by', fields.CharField(max_length=200)),
                ('asked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('answer', fields.CharField(null=True, description='The reply as received.', max_length=200)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('answer_event', fields.ForeignKeyField('models.ConsentEvent', source_field='answer_event_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'consent_question', 'app': 'models', 'indexes': [Index(fields=['phone', 'status', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'A consent question a sender texted to a contact, and how it was answered.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignupForm',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='signup_forms', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='signup_forms', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('name', fields.CharField(max_length=200)),
                ('key', fields.CharField(unique=True, description='``pf_...``: public by design (see the module docstring).', max_length=64)),
                ('allowed_origins', fields.JSONField(default=list, description='Origins (``https://shop.example``) whose pages may post to the form (CORS).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('words', fields.TextField(description='The words the form shows next to its checkbox (the consent text, evidence).', unique=False)),
                ('channel', fields.CharField(default='EMAIL', description='Which channel the form subscribes to (EMAIL or ALL).', max_length=8)),
                ('created_by', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('accepted_count', fields.IntField(default=0, description='Sign-ups accepted, and those refused quietly by the mail limits (for the operator).')),
                ('refused_count', fields.IntField(default=0)),
            ],
            options={'table': 'signup_form', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A publishable form key that starts confirmed opt-ins at exactly one scope.'},
            bases=['Model'],
        ),
        AlterFieldNotOnSqlite(
            model_name='ConsentEvent',
            name='action',
            field=fields.CharEnumField(description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT\nNOT_INTERESTED: NOT_INTERESTED\nINTEREST_RESTORED: INTEREST_RESTORED\nFREQUENCY_SET: FREQUENCY_SET\nFREQUENCY_CLEARED: FREQUENCY_CLEARED\nOPT_BACK_IN_REQUESTED: OPT_BACK_IN_REQUESTED\nOPT_BACK_IN_EXPIRED: OPT_BACK_IN_EXPIRED\nSUPPRESSED: SUPPRESSED\nUNSUPPRESSED: UNSUPPRESSED\nCONFIRMATION_REQUESTED: CONFIRMATION_REQUESTED\nCONFIRMATION_EXPIRED: CONFIRMATION_EXPIRED\nCONFIRMATION_MAILED: CONFIRMATION_MAILED\nCONSENT_ASKED: CONSENT_ASKED\nCONSENT_DECLINED: CONSENT_DECLINED', enum_type=Action, max_length=32),
        ),
        AlterFieldNotOnSqlite(
            model_name='ConsentState',
            name='status',
            field=fields.CharEnumField(description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT\nPENDING: PENDING', enum_type=ConsentStatus, max_length=16),
        ),
        ops.AddField(
            model_name='ConsentState',
            name='pending_until',
            field=fields.DatetimeField(null=True, description='PENDING only: when its consent request expires (issue #21). Kept on', auto_now=False, auto_now_add=False),
        ),
        ops.AlterModelOptions(
            name='OptBackInRequest',
            options={'table': 'opt_back_in_request', 'app': 'models', 'indexes': [Index(fields=['contact', 'status']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'A consent request: a double opt-in confirmed from an emailed link.'},
        ),
        ops.AddField(
            model_name='OptBackInRequest',
            name='form',
            field=fields.ForeignKeyField('models.SignupForm', source_field='form_id', null=True, db_constraint=True, to_field='id', related_name='requests', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='OptBackInRequest',
            name='kind',
            field=fields.CharEnumField(default=RequestKind.OPT_BACK_IN, description='OPT_BACK_IN: OPT_BACK_IN\nOPT_IN: OPT_IN', db_default='OPT_BACK_IN', enum_type=RequestKind, max_length=16),
        ),
    ]
