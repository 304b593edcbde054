"""Every sentence the engine says to a person, in Japanese and English, in one place."""

from __future__ import annotations

from config.i18n import LocalText


def t(ja: str, en: str) -> LocalText:
    return LocalText(ja=ja, en=en)


REQUIRED = t("必須項目です", "This field is required")
TOO_SHORT = t("{min}文字以上で入力してください", "Enter at least {min} characters")
TOO_LONG = t("{max}文字以内で入力してください", "Enter at most {max} characters")
NOT_NUMBER = t("数値を入力してください", "Enter a number")
BELOW_MIN = t("{min}以上の値を入力してください", "Enter {min} or more")
ABOVE_MAX = t("{max}以下の値を入力してください", "Enter {max} or less")
NOT_MONEY = t("金額は円単位の整数で入力してください（例: 12,800）", "Enter a whole-yen amount (e.g. 12,800)")
BAD_DATE = t("日付は YYYY-MM-DD の形式で入力してください", "Enter a date as YYYY-MM-DD")
RANGE_ORDER = t("終了日は開始日と同じか、それより後にしてください", "The end date must not be before the start date")
BAD_OPTION = t("選択肢から選んでください", "Choose one of the options")
BAD_FILE = t("https:// で始まるURLか、添付ファイルを指定してください", "Give an https:// link or attach a file")
BAD_USER = t("社員を選んでください", "Choose a person")
TOO_FEW_ITEMS = t("明細を{min}件以上入力してください", "Add at least {min} item(s)")
TOO_MANY_ITEMS = t("明細は{max}件までです", "At most {max} items")
UNKNOWN_FIELD = t("この申請にない項目です", "This form has no such field")
NOT_AN_OBJECT = t("入力内容の形式が正しくありません", "The form data is not in the expected shape")
CHECK_VALUE = t("入力内容を確認してください（{detail}）", "Check this value ({detail})")

# leave
HALF_DAY_ONE_DATE = t("半休・時間単位の休暇は1日だけを指定してください", "Half-day and hourly leave are for one date")
HOURS_REQUIRED = t("時間単位の休暇は時間数を入力してください", "Enter the number of hours for hourly leave")
NO_WORKING_DAYS = t("期間に営業日が含まれていません（休日・休業日のみ）",
                    "The dates contain no working days (only holidays or closures)")
HOURLY_CAP = t("時間単位の休暇は年{cap}時間までです（取得済み・申請中 {used} 時間、今回 {asked} 時間）",
               "Hourly leave is capped at {cap} hours a year ({used} taken or pending, {asked} requested)")
NOT_ENOUGH_LEAVE = t("有給休暇の残日数が足りません（残り {available} 日、申請中 {reserved} 日、今回 {asked} 日）",
                     "Not enough paid leave: {available} days left, {reserved} pending, {asked} requested")

# outcomes
SUBMITTED = t("{number} を申請しました", "Submitted {number}")
APPROVED = t("{number} を承認しました", "Approved {number}")
REJECTED = t("{number} を却下しました", "Rejected {number}")
SENT_BACK = t("{number} を差し戻しました", "Sent {number} back")
WITHDRAWN = t("{number} を取り下げました", "Withdrew {number}")
RESUBMITTED = t("{number} を再申請しました", "Resubmitted {number}")
CLAIMED = t("{number} の担当になりました", "You took {number}")
RESOLVED = t("{number} を対応済みにしました", "Resolved {number}")
REASSIGNED = t("{number} の承認者を {name} に変更しました", "Reassigned {number} to {name}")
RETURNED_OVERDUE = t("{number} は期限超過のため申請者に差し戻されました", "{number} was returned to the requester as overdue")
# the note the requester reads on a request the system sent back (workflows.yaml: final: return_to_requester)
OVERDUE_NOTE = t("期限超過: 「{step}」で{days}営業日以上承認されなかったため、自動的に差し戻されました。"
                 "内容を確認のうえ再申請するか、取り下げてください。",
                 "Overdue: nobody decided at '{step}' for {days} business days past the due date, so the request "
                 "was returned to you automatically. Please check it and resubmit, or withdraw it.")
OVERDUE_REASON = t("期限超過", "overdue")
DELEGATED = t("{name} さんを代理承認者に設定しました", "{name} can now approve for you")

ALREADY_DECIDED = t("{number} は {when} に {name} さんが{decision}済みです",
                    "{number} was already {decision_en} by {name} at {when}")
REQUEST_CLOSED = t("{number} はすでに{status}です", "{number} is already {status_en}")
STEP_MOVED_ON = t("この段階はすでに完了しています（{number}）", "This step of {number} is already complete")
NOT_YOUR_TURN = t("この段階はまだ始まっていません（{number}）", "This step of {number} has not started yet")
NOT_ALLOWED = t("{number} を処理する権限がありません", "You may not act on {number}")
SELF_APPROVAL = t("自分の申請は承認できません（代理でも不可）",
                  "You cannot approve your own request, not even as a delegate")
REASON_REQUIRED = t("理由を入力してください", "Please give a reason")
NOT_FOUND = t("申請が見つかりません", "Request not found")
UNKNOWN_TYPE = t("申請の種類「{type}」はありません", "There is no request type '{type}'")
UNKNOWN_PERSON = t("社員として登録されていません。人事にお問い合わせください",
                   "You are not registered as an employee yet; please ask HR")
INACTIVE_PERSON = t("在籍していない社員です", "This person is not an active employee")
NO_APPROVER = t("「{step}」の承認者が見つかりません。管理者に上長・部門長・役割の設定を依頼してください",
                "No approver found for '{step}'; ask an admin to set up managers, department heads or roles")
ONLY_REQUESTER = t("申請者本人だけが行えます", "Only the requester can do this")
NOT_SENT_BACK = t("{number} は差し戻されていません", "{number} has not been sent back")
UNKNOWN_STEP = t("差し戻し先「{step}」はこの申請の前の段階にありません",
                 "'{step}' is not an earlier step of this request")
NOT_QUEUE = t("この段階は担当を引き受ける種類ではありません", "This step is not a queue to claim from")
ALREADY_CLAIMED = t("{number} は {when} に {name} さんが担当済みです",
                    "{number} was already taken by {name} at {when}")
ALREADY_ON_STEP = t("{name} さんはすでにこの段階の承認者です", "{name} is already an approver of this step")
ONLY_ADMIN = t("管理者だけが行えます", "Only an admin can do this")
BAD_WINDOW = t("終了日時は開始日時より後にしてください", "The end must be after the start")
SELF_DELEGATION = t("自分自身を代理人にはできません", "You cannot delegate to yourself")
LEAVE_BALANCE_CHANGED = t("承認できません: 申請者の有給残日数が不足しています（残り {available} 日、申請 {asked} 日）",
                          "Cannot approve: the requester has {available} days of leave left, {asked} requested")

DECISION_JA = {"approved": "承認", "rejected": "却下", "sent_back": "差し戻し", "resolved": "対応",
               "claimed": "担当", "informed": "確認", "withdrawn": "取り下げ"}
STATUS_JA = {"pending": "承認待ち", "sent_back": "差し戻し中", "approved": "承認済み", "rejected": "却下",
             "withdrawn": "取り下げ済み", "resolved": "対応済み"}
STATUS_EN = {"pending": "pending", "sent_back": "sent back", "approved": "approved", "rejected": "rejected",
             "withdrawn": "withdrawn", "resolved": "resolved"}


def fill(text: LocalText, **values: object) -> LocalText:
    """Fill {placeholders} in both languages; a LocalText value gives each language its own word."""
    ja = {k: v.ja if isinstance(v, LocalText) else v for k, v in values.items()}
    en = {k: v.en if isinstance(v, LocalText) else v for k, v in values.items()}
    return LocalText(ja=text.ja.format(**ja), en=text.en.format(**en))
