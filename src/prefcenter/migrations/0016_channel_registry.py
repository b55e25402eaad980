from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from prefcenter.models.enums import Channel, Source
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

from prefcenter.migration_ops import AlterFieldNotOnSqlite


# Issue #12: a scope's policies move from one column per channel into ``policies`` (a
# channel -> policy map), so a new channel needs no column. Every decision keeps its
# meaning: a column's value becomes the channel's entry, an empty one stays absent
# (inherit). The old columns are emptied (nothing reads them any more) and stay for now:
# dropping a column makes SQLite rebuild the table (see prefcenter.migration_ops).
_COLUMNS = (("email_policy", "EMAIL"), ("sms_policy", "SMS"))


#: (columns -> map, map -> columns) per dialect: placeholders and casts differ.
_UPDATES = {
    "sqlite": ("UPDATE scope SET policies = ?, email_policy = NULL, sms_policy = NULL "
               "WHERE id = ?",
               "UPDATE scope SET email_policy = ?, sms_policy = ? WHERE id = ?"),
    "postgres": ("UPDATE scope SET policies = CAST($1 AS JSONB), email_policy = NULL, "
                 "sms_policy = NULL WHERE id = CAST($2 AS UUID)",
                 "UPDATE scope SET email_policy = $1, sms_policy = $2 "
                 "WHERE id = CAST($3 AS UUID)"),
}


async def _columns_to_map(apps, schema_editor):
    client = schema_editor.client
    update = _UPDATES[client.capabilities.dialect][0]
    rows = await client.execute_query_dict(
        "SELECT id, email_policy, sms_policy FROM scope "
        "WHERE email_policy IS NOT NULL OR sms_policy IS NOT NULL")
    for row in rows:
        policies = {channel: row[column] for column, channel in _COLUMNS if row[column]}
        await client.execute_query(update, [dumps(policies, separators=(",", ":")),
                                            str(row["id"])])


async def _map_to_columns(apps, schema_editor):
    client = schema_editor.client
    update = _UPDATES[client.capabilities.dialect][1]
    for row in await client.execute_query_dict("SELECT id, policies FROM scope"):
        policies = row["policies"]
        policies = loads(policies) if isinstance(policies, str) else (policies or {})
        if policies:
            await client.execute_query(update, [policies.get("EMAIL"), policies.get("SMS"),
                                                str(row["id"])])


class Migration(migrations.Migration):
    dependencies = [('models', '0015_senders_speed')]

    initial = False

    operations = [
        AlterFieldNotOnSqlite(
            model_name='ConsentEvent',
            name='channel',
            field=fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        AlterFieldNotOnSqlite(
            model_name='ConsentEvent',
            name='source',
            field=fields.CharEnumField(description='PREFERENCE_CENTER: PREFERENCE_CENTER\nEMAIL_LINK: EMAIL_LINK\nONE_CLICK: ONE_CLICK\nSMS_KEYWORD: SMS_KEYWORD\nWHATSAPP_KEYWORD: WHATSAPP_KEYWORD\nADMIN: ADMIN\nAPI: API\nIMPORT: IMPORT\nPARTICIPATION_FORM: PARTICIPATION_FORM', enum_type=Source, max_length=32),
        ),
        AlterFieldNotOnSqlite(
            model_name='ConsentState',
            name='channel',
            field=fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        ops.AlterModelOptions(
            name='Contact',
            options={'table': 'contact', 'app': 'models', 'unique_together': (('tenant', 'email'), ('tenant', 'phone'), ('tenant', 'whatsapp'), ('tenant', 'external_id')), 'pk_attr': 'id', 'table_description': 'A person. Unique per tenant by email, by phone, by WhatsApp number and by external id.'},
        ),
        ops.AddField(
            model_name='Contact',
            name='whatsapp',
            field=fields.CharField(null=True, description='The WhatsApp number in E.164 (often the phone number, but not always).', max_length=20),
        ),
        ops.AddConstraint(
            model_name='Contact',
            constraint=UniqueConstraint(fields=('tenant', 'whatsapp'), name=None),
        ),
        AlterFieldNotOnSqlite(
            model_name='FrequencyPreference',
            name='channel',
            field=fields.CharEnumField(default=Channel.ALL, description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        AlterFieldNotOnSqlite(
            model_name='TopicConsentState',
            name='channel',
            field=fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        AlterFieldNotOnSqlite(
            model_name='TopicFrequency',
            name='channel',
            field=fields.CharEnumField(default=Channel.ALL, description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        AlterFieldNotOnSqlite(
            model_name='OptBackInRequest',
            name='channel',
            field=fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        AlterFieldNotOnSqlite(
            model_name='OptBackInRequest',
            name='source',
            field=fields.CharEnumField(description='PREFERENCE_CENTER: PREFERENCE_CENTER\nEMAIL_LINK: EMAIL_LINK\nONE_CLICK: ONE_CLICK\nSMS_KEYWORD: SMS_KEYWORD\nWHATSAPP_KEYWORD: WHATSAPP_KEYWORD\nADMIN: ADMIN\nAPI: API\nIMPORT: IMPORT\nPARTICIPATION_FORM: PARTICIPATION_FORM', enum_type=Source, max_length=32),
        ),
        AlterFieldNotOnSqlite(
            model_name='OutboxMail',
            name='channel',
            field=fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
        ops.AddField(
            model_name='Scope',
            name='policies',
            field=fields.JSONField(default=dict, db_default='{}', description='Default policy per channel; a channel not named inherits.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.RunPython(_columns_to_map, _map_to_columns),
        AlterFieldNotOnSqlite(
            model_name='SendRecord',
            name='channel',
            field=fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP\nALL: ALL', enum_type=Channel, max_length=8),
        ),
    ]
