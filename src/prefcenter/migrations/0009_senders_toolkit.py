from tortoise import migrations
from tortoise.migrations import operations as ops
from prefcenter.models.senders import FeedbackKind, SuppressionOrigin
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0008_webhook_outage')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FeedbackEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='feedback_events', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', null=True, db_constraint=True, to_field='id', related_name='feedback_events', on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharField(max_length=32)),
                ('provider_event_id', fields.CharField(max_length=200)),
                ('kind', fields.CharEnumField(description='HARD_BOUNCE: HARD_BOUNCE\nSOFT_BOUNCE: SOFT_BOUNCE\nCOMPLAINT: COMPLAINT', enum_type=FeedbackKind, max_length=16)),
                ('outcome', fields.CharField(description='What prefcenter did: ``suppressed``, ``opted-out``, ``counted``, ``no-contact``, ...', max_length=64)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'email_feedback', 'app': 'models', 'unique_together': (('tenant', 'provider', 'provider_event_id'),), 'indexes': [Index(fields=['contact', 'kind'])], 'pk_attr': 'id', 'table_description': "One bounce or complaint a provider reported; the provider's id makes it idempotent."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SenderConfig',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.OneToOneField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='sender_config', on_delete=OnDelete.CASCADE)),
                ('secret', fields.CharField(description='Random; keys the suppression digests and signs feedback tags. Never leaves the server.', max_length=128)),
                ('sendgrid_public_key', fields.TextField(null=True, description='SendGrid Event Webhook verification key (PEM or base64 DER of the P-256 public key).', unique=False)),
                ('mailgun_signing_key', fields.CharField(null=True, description='Mailgun HTTP webhook signing key.', max_length=256)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'sender_config', 'app': 'models', 'pk_attr': 'id', 'table_description': "One per tenant, created on first use: its secret and its email providers' keys."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SuppressionEntry',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='suppression_entries', on_delete=OnDelete.CASCADE)),
                ('digest', fields.CharField(description="Hex SHA-256 (plain, as imported) or HMAC-SHA256 (salted with the tenant's secret).", max_length=64)),
                ('origin', fields.CharEnumField(description='LIST: LIST\nERASURE: ERASURE\nBOUNCE: BOUNCE', enum_type=SuppressionOrigin, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'suppression_entry', 'app': 'models', 'unique_together': (('tenant', 'digest'),), 'pk_attr': 'id', 'table_description': 'One suppressed address (or phone number) of a tenant, as a digest.'},
            bases=['Model'],
        ),
    ]
