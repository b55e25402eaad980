from tortoise import migrations
from tortoise.migrations import operations as ops
from prefcenter.models.enums import Channel, ConsentStatus, Period, TopicKind
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0012_contact_locale_unknown')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Topic',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='topics', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='topics', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('key', fields.CharField(description='What senders ask with (``decision(topic: "newsletter")``); fixed once created.', max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('kind', fields.CharEnumField(description='MARKETING: MARKETING\nTRANSACTIONAL: TRANSACTIONAL', enum_type=TopicKind, max_length=16)),
                ('archived_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'topic', 'app': 'models', 'unique_together': (('tenant', 'key'),), 'pk_attr': 'id', 'table_description': 'What a message is about (issue #14), offered at its scope and every scope below.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TopicConsentState',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='topic_states', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='topic_states', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='topic_states', on_delete=OnDelete.CASCADE)),
                ('topic', fields.ForeignKeyField('models.Topic', source_field='topic_id', db_constraint=True, to_field='id', related_name='states', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('status', fields.CharEnumField(description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT\nPENDING: PENDING', enum_type=ConsentStatus, max_length=16)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'topic_consent_state', 'app': 'models', 'unique_together': (('contact', 'scope', 'topic', 'channel'),), 'indexes': [Index(fields=['tenant', 'scope_path'])], 'pk_attr': 'id', 'table_description': "A contact's decision about one topic at one scope for one channel (issue #14)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TopicFrequency',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='topic_frequencies', on_delete=OnDelete.CASCADE)),
                ('scope', fields.ForeignKeyField('models.Scope', source_field='scope_id', db_constraint=True, to_field='id', related_name='topic_frequencies', on_delete=OnDelete.CASCADE)),
                ('topic', fields.ForeignKeyField('models.Topic', source_field='topic_id', db_constraint=True, to_field='id', related_name='frequencies', on_delete=OnDelete.CASCADE)),
                ('scope_path', fields.CharField(max_length=2000)),
                ('channel', fields.CharEnumField(default=Channel.ALL, description='EMAIL: EMAIL\nSMS: SMS\nALL: ALL', enum_type=Channel, max_length=8)),
                ('max_count', fields.IntField(null=True)),
                ('period', fields.CharEnumField(null=True, description='DAY: DAY\nWEEK: WEEK\nMONTH: MONTH', enum_type=Period, max_length=8)),
                ('paused_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('event', fields.ForeignKeyField('models.ConsentEvent', source_field='event_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'topic_frequency', 'app': 'models', 'unique_together': (('contact', 'scope', 'topic', 'channel'),), 'pk_attr': 'id', 'table_description': 'How often the contact accepts messages about one topic under a scope (issue #14).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ConsentEvent',
            name='topic',
            field=fields.ForeignKeyField('models.Topic', source_field='topic_id', null=True, description='Issue #14: the topic a topic decision or topic frequency is about (null: general).', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE),
        ),
        ops.AddField(
            model_name='SendRecord',
            name='topic',
            field=fields.ForeignKeyField('models.Topic', source_field='topic_id', null=True, description="Issue #14: what the message was about; counts against that topic's caps.", db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE),
        ),
    ]
