from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from prefcenter.models.enums import Action
from tortoise import fields

from prefcenter.migration_ops import AlterFieldNotOnSqlite

class Migration(migrations.Migration):
    dependencies = [('models', '0013_topics')]

    initial = False

    operations = [
        # Issue #14: two new actions (only the description changes: nothing for SQLite,
        # whose AlterField would rebuild the table), and two nullable contact columns:
        # null is what every contact had before (no own zone, no own quiet hours), and no
        # scope sets quietHours yet, so every decision stays what it was.
        AlterFieldNotOnSqlite(
            model_name='ConsentEvent',
            name='action',
            field=fields.CharEnumField(description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT\nNOT_INTERESTED: NOT_INTERESTED\nINTEREST_RESTORED: INTEREST_RESTORED\nFREQUENCY_SET: FREQUENCY_SET\nFREQUENCY_CLEARED: FREQUENCY_CLEARED\nOPT_BACK_IN_REQUESTED: OPT_BACK_IN_REQUESTED\nOPT_BACK_IN_EXPIRED: OPT_BACK_IN_EXPIRED\nSUPPRESSED: SUPPRESSED\nUNSUPPRESSED: UNSUPPRESSED\nCONFIRMATION_REQUESTED: CONFIRMATION_REQUESTED\nCONFIRMATION_EXPIRED: CONFIRMATION_EXPIRED\nCONFIRMATION_MAILED: CONFIRMATION_MAILED\nCONSENT_ASKED: CONSENT_ASKED\nCONSENT_DECLINED: CONSENT_DECLINED\nQUIET_HOURS_SET: QUIET_HOURS_SET\nQUIET_HOURS_CLEARED: QUIET_HOURS_CLEARED', enum_type=Action, max_length=32),
        ),
        ops.AddField(
            model_name='Contact',
            name='quiet_hours',
            field=fields.JSONField(null=True, description="Issue #14: the contact's own stricter quiet hours per channel,", encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Contact',
            name='time_zone',
            field=fields.CharField(null=True, description='Issue #14: the IANA time zone set for the contact; null: derived from the phone', max_length=64),
        ),
    ]
