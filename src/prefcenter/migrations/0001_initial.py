from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from prefcenter.models.enums import Action, Channel, ConsentStatus, Period, Policy, Role, Source, TokenPurpose
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Tenant',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'tenant', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One customer organisation. Nothing crosses tenants.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Scope',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='scopes', on_delete=OnDelete.CASCADE)),
                ('parent', fields.ForeignKeyField('models.Scope', source_field='parent_id', null=True, db_constraint=True, to_field='id', related_name='children', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharField(max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('path', fields.CharField(db_index=True, max_length=2000)),
                ('depth', fields.IntField(default=0)),
                ('email_policy', fields.CharEnumField(null=True, description='ALLOWED: ALLOWED\nCONSENT_REQUIRED: CONSENT_REQUIRED', enum_type=Policy, max_length=20)),
                ('sms_policy', fields.CharEnumField(null=True, description='ALLOWED: ALLOWED\nCONSENT_REQUIRED: CONSENT_REQUIRED', enum_type=Policy, max_length=20)),
                ('settings', fields.JSONField(default=dict, description='Free-form per-scope settings inherited down the tree (keywords, mail options, ...).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'scope', 'app': 'models', 'pk_attr': 'id', 'table_description': "A node of a tenant's tree. ``path`` is the materialised path ``/root/../self/``."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharEnumField(description='OWNER: OWNER\nADMIN: ADMIN\nVIEWER: VIEWER\nPARTNER: PARTNER', enum_type=Role, max_length=20)),
                ('name', fields.CharField(default='', max_length=200)),
                ('prefix', fields.CharField(max_length=32)),
                ('secret_hash', fields.CharField(unique=True, max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_key', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A secret bound to a role and a scope subtree; only its hash is stored.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Contact',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='contacts', on_delete=OnDelete.CASCADE)),
                ('home_scope', fields.ForeignKeyField('models.Scope', source_field='home_scope_id', db_constraint=True, to_field='id', related_name='home_contacts', on_delete=OnDelete.RESTRICT)),
                ('home_path', fields.CharField(max_length=2000)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('phone', fields.CharField(null=True, max_length=20)),
                ('external_id', fields.CharField(null=True, max_length=200)),
                ('locale', fields.CharField(default='en', max_length=35)),
                ('name', fields.CharField(default='', max_length=200)),
                ('suppressed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('suppression_reason', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'contact', 'app': 'models', 'unique_together': (('tenant', 'email'), ('tenant', 'phone'), ('tenant', 'external_id')), 'pk_attr': 'id', 'table_description': 'A person. Unique per tenant by email, by phone and by external id.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsentEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(description='Denormalised scope path so subtree filters need no join.', max_length=2000)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('action', fields.CharEnumField(description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT\nNOT_INTERESTED: NOT_INTERESTED\nINTEREST_RESTORED: INTEREST_RESTORED\nFREQUENCY_SET: FREQUENCY_SET\nFREQUENCY_CLEARED: FREQUENCY_CLEARED\nOPT_BACK_IN_REQUESTED: OPT_BACK_IN_REQUESTED\nOPT_BACK_IN_EXPIRED: OPT_BACK_IN_EXPIRED\nSUPPRESSED: SUPPRESSED\nUNSUPPRESSED: UNSUPPRESSED', enum_type=Action, max_length=32)),
                ('source', fields.CharEnumField(description='PREFERENCE_CENTER: PREFERENCE_CENTER\nEMAIL_LINK: EMAIL_LINK\nONE_CLICK: ONE_CLICK\nSMS_KEYWORD: SMS_KEYWORD\nADMIN: ADMIN\nAPI: API\nIMPORT: IMPORT\nPARTICIPATION_FORM: PARTICIPATION_FORM', enum_type=Source, max_length=32)),
                ('actor', fields.CharField(description='Who did it: ``contact:<id>``, ``api-key:<id>``, ``sms:<number>``, ``system``.', max_length=200)),
                ('evidence', fields.JSONField(default=dict, description='The words shown or received, notice/form version, and anything else provable.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=500)),
                ('data', fields.JSONField(default=dict, description="Action-specific data (a frequency's values, a request's expiry, ...).", encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'consent_event', 'app': 'models', 'indexes': [Index(fields=['tenant', 'scope_path']), Index(fields=['contact', 'scope'])], 'pk_attr': 'id', 'table_description': 'One ledger entry. Never updated, never deleted. ``id`` orders the ledger.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsentState',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='states', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='states', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='states', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('status', fields.CharEnumField(description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT', enum_type=ConsentStatus, max_length=16)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'consent_state', 'app': 'models', 'unique_together': (('contact', 'scope', 'channel'),), 'indexes': [Index(fields=['scope', 'channel', 'status']), Index(fields=['tenant', 'scope_path'])], 'pk_attr': 'id', 'table_description': 'The explicit decision a contact set at one scope for one channel (latest wins).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ContactToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=128)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharEnumField(description='UNSUBSCRIBE: UNSUBSCRIBE\nNOT_INTERESTED: NOT_INTERESTED\nCONFIRM_OPT_BACK_IN: CONFIRM_OPT_BACK_IN\nPREFERENCES: PREFERENCES', enum_type=TokenPurpose, max_length=32)),
                ('channel', fields.CharField(default='ALL', max_length=8)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('data', fields.JSONField(default=dict, description='Purpose-specific data (for a confirmation: the pending request id).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'contact_token', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A link token: bound to contact, purpose and scope, expiring, stored only as a hash.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FrequencyPreference',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='frequencies', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='frequencies', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('channel', fields.CharEnumField(default=Channel.ALL, description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('max_count', fields.IntField(null=True)),
                ('period', fields.CharEnumField(null=True, description='DAY: DAY\nWEEK: WEEK\nMONTH: MONTH', enum_type=Period, max_length=8)),
                ('paused_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'frequency_preference', 'app': 'models', 'unique_together': (('contact', 'scope', 'channel'),), 'pk_attr': 'id', 'table_description': 'How often the contact accepts messages under a scope: N per period, or paused.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotInterested',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='mutes', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='mutes', on_delete=OnDelete.CASCADE)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'not_interested', 'app': 'models', 'unique_together': (('contact', 'scope'),), 'pk_attr': 'id', 'table_description': 'A per-scope mute the contact set from a link (seed 001). Private to the contact.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SendRecord',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='sends', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='sends', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='sends', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('sent_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('message_ref', fields.CharField(null=True, description="The sender's own id for the message, to make recording idempotent.", max_length=200)),
                ('actor', fields.CharField(max_length=200)),
            ],
            options={'table': 'send_record', 'app': 'models', 'unique_together': (('contact', 'message_ref'),), 'indexes': [Index(fields=['contact', 'sent_at'])], 'pk_attr': 'id', 'table_description': 'A message that was sent (or claimed) to a contact under a scope.'},
            bases=['Model'],
        ),
    ]
