"""What the demo store sells, who its customers are called, and what its staff write.

Plain data for :mod:`loyal.demo.generator`: the product catalogue (about 60 products in 8
categories, bilingual names, prices in CNY, margins that differ by category, products bought
together), names in simplified and traditional Chinese and English, cities, staff usernames,
the short texts of calls, chats, emails and complaints in three scripts, and the holiday
calendar behind the seasonality; and :func:`identities`, which turns drawn indices into names,
emails, phones and WeChat ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Staff usernames: the loader must create these users before it imports owners and interactions.
STAFF: tuple[str, ...] = (
    "li.na",
    "wang.wei",
    "zhang.min",
    "chen.jing",
    "liu.yang",
    "emma.smith",
    "james.brown",
    "olivia.wong",
)


@dataclass(frozen=True)
class Category:
    code: str
    label: str  # what the order lines carry: "English / 中文"
    margin: float  # share of the price that is gross margin


@dataclass(frozen=True)
class Product:
    sku: str
    name: str  # "English / 中文"
    category: str  # Category.code
    price: float  # CNY
    popularity: float  # relative weight when a product is picked without an affinity
    consumable: bool = False  # bought in quantities above one, again and again


CATEGORIES: tuple[Category, ...] = (
    Category("coffee", "Coffee / 咖啡", 0.45),
    Category("coffee_gear", "Coffee gear / 咖啡器具", 0.40),
    Category("tea", "Tea / 茶叶", 0.55),
    Category("phones", "Phones / 手机", 0.12),
    Category("accessories", "Phone accessories / 手机配件", 0.60),
    Category("snacks", "Snacks / 零食", 0.35),
    Category("beauty", "Beauty / 美妆个护", 0.58),
    Category("home", "Home / 家居", 0.45),
)

_P = Product
PRODUCTS: tuple[Product, ...] = (
    _P("COF-01", "Yunnan Arabica Beans 500g / 云南小粒咖啡豆 500g", "coffee", 88, 9, True),
    _P("COF-02", "Ethiopia Yirgacheffe Beans 250g / 耶加雪菲咖啡豆 250g", "coffee", 98, 6, True),
    _P(
        "COF-03",
        "Colombia Medium-Dark Roast 500g / 哥伦比亚中深烘咖啡豆 500g",
        "coffee",
        92,
        5,
        True,
    ),
    _P("COF-04", "Espresso Blend Beans 1kg / 意式拼配咖啡豆 1kg", "coffee", 158, 4, True),
    _P("COF-05", "Drip Bag Coffee 10-pack / 挂耳咖啡 10片装", "coffee", 39, 8, True),
    _P("COF-06", "Cold Brew Concentrate 6 bottles / 冷萃咖啡液 6瓶", "coffee", 69, 4, True),
    _P("COF-07", "Coffee Capsules 20-pack / 胶囊咖啡 20粒", "coffee", 75, 4, True),
    _P("COF-08", "Decaf Beans 250g / 低因咖啡豆 250g", "coffee", 85, 2, True),
    _P("COF-09", "Instant Black Coffee 30 sticks / 速溶黑咖啡 30条", "coffee", 45, 5, True),
    _P("GEA-01", "V60 Paper Filters 100 / V60 滤纸 100张", "coffee_gear", 25, 4, True),
    _P("GEA-02", "Pour-Over Dripper / 手冲滤杯", "coffee_gear", 69, 2),
    _P("GEA-03", "Hand Coffee Grinder / 手摇磨豆机", "coffee_gear", 259, 1.5),
    _P("GEA-04", "Electric Burr Grinder / 电动磨豆机", "coffee_gear", 599, 0.8),
    _P("GEA-05", "Gooseneck Kettle / 细口手冲壶", "coffee_gear", 199, 1.2),
    _P("GEA-06", "French Press / 法压壶", "coffee_gear", 129, 1.2),
    _P("GEA-07", "Ceramic Coffee Mug / 陶瓷咖啡杯", "coffee_gear", 49, 2),
    _P("GEA-08", "Coffee Scale / 咖啡电子秤", "coffee_gear", 119, 1),
    _P("TEA-01", "West Lake Longjing 250g / 西湖龙井 250g", "tea", 268, 3, True),
    _P("TEA-02", "Yunnan Pu'er Cake 357g / 云南普洱茶饼 357g", "tea", 198, 3, True),
    _P("TEA-03", "Anxi Tieguanyin 250g / 安溪铁观音 250g", "tea", 168, 3, True),
    _P("TEA-04", "Wuyi Da Hong Pao / 武夷岩茶大红袍", "tea", 298, 2, True),
    _P("TEA-05", "Lapsang Souchong Black Tea / 正山小种红茶", "tea", 138, 2.5, True),
    _P("TEA-06", "Jasmine Tea / 茉莉花茶", "tea", 78, 3.5, True),
    _P("TEA-07", "White Tea Shoumei / 白茶寿眉", "tea", 158, 2, True),
    _P("TEA-08", "Travel Tea Set / 旅行茶具套装", "tea", 189, 1),
    _P("PHN-01", "Huawei nova 12 / 华为 nova 12", "phones", 2699, 1),
    _P("PHN-02", "Xiaomi 14 / 小米 14", "phones", 3999, 1),
    _P("PHN-03", "OPPO Reno 11 / OPPO Reno 11", "phones", 2499, 0.7),
    _P("PHN-04", "vivo X100 / vivo X100", "phones", 3999, 0.7),
    _P("PHN-05", "iPhone 15 128GB / iPhone 15 128GB", "phones", 5999, 1),
    _P("PHN-06", "Honor 90 / 荣耀 90", "phones", 2299, 0.6),
    _P("ACC-01", "Silicone Phone Case / 硅胶手机壳", "accessories", 59, 3),
    _P("ACC-02", "Tempered Glass Protector 2-pack / 钢化膜 2片", "accessories", 39, 3),
    _P("ACC-03", "65W Fast Charger / 65W 快充充电器", "accessories", 129, 2),
    _P("ACC-04", "USB-C Cable / Type-C 数据线", "accessories", 35, 3, True),
    _P("ACC-05", "Wireless Earbuds / 无线蓝牙耳机", "accessories", 299, 2),
    _P("ACC-06", "10000mAh Power Bank / 10000mAh 充电宝", "accessories", 149, 2),
    _P("ACC-07", "Car Phone Mount / 车载手机支架", "accessories", 69, 1),
    _P("ACC-08", "Wireless Charging Pad / 无线充电板", "accessories", 99, 1),
    _P("ACC-09", "Phone Lanyard / 手机挂绳", "accessories", 29, 1),
    _P("SNK-01", "Daily Nuts 30 packs / 每日坚果 30袋", "snacks", 139, 5, True),
    _P("SNK-02", "Dried Mango / 芒果干", "snacks", 35, 4, True),
    _P("SNK-03", "Nougat Gift Box / 牛轧糖礼盒", "snacks", 88, 2, True),
    _P("SNK-04", "Pineapple Cakes / 凤梨酥", "snacks", 68, 3, True),
    _P("SNK-05", "Dark Chocolate / 黑巧克力", "snacks", 45, 4, True),
    _P("SNK-06", "Butter Cookies / 黄油曲奇", "snacks", 55, 3, True),
    _P("SNK-07", "New Year Nut Gift Box / 年货坚果礼盒", "snacks", 199, 1.5),
    _P("SNK-08", "Cantonese Mooncake Box / 广式月饼礼盒", "snacks", 168, 1),
    _P("BEA-01", "Moisturising Cream / 保湿面霜", "beauty", 199, 3, True),
    _P("BEA-02", "Hydrating Masks 10 / 补水面膜 10片", "beauty", 89, 4, True),
    _P("BEA-03", "Amino Acid Cleanser / 氨基酸洁面乳", "beauty", 79, 3, True),
    _P("BEA-04", "Sunscreen SPF50 / 防晒霜 SPF50", "beauty", 129, 2.5, True),
    _P("BEA-05", "Lipstick / 口红", "beauty", 239, 2),
    _P("BEA-06", "Shampoo / 洗发水", "beauty", 69, 3, True),
    _P("BEA-07", "Hand Cream / 护手霜", "beauty", 39, 2.5, True),
    _P("HOM-01", "Cotton Towels 3-pack / 纯棉毛巾 3条", "home", 59, 2.5),
    _P("HOM-02", "Scented Candle / 香薰蜡烛", "home", 99, 2),
    _P("HOM-03", "Insulated Bottle / 保温杯", "home", 129, 2.5),
    _P("HOM-04", "Bedding Set / 四件套床品", "home", 399, 1),
    _P("HOM-05", "Storage Box / 收纳盒", "home", 49, 2),
    _P("HOM-06", "Glass Tea Cup / 玻璃茶杯", "home", 45, 1.5),
)

# Products bought together: for a product, the products a second line is likely to be (the first
# named most often). These are the affinities the basket analysis should find again.
AFFINITIES: dict[str, tuple[str, ...]] = {
    "COF-01": ("GEA-01", "GEA-02", "GEA-03", "GEA-05"),
    "COF-02": ("GEA-01", "GEA-02", "GEA-08"),
    "COF-03": ("GEA-01", "GEA-06", "GEA-03"),
    "COF-04": ("GEA-01", "GEA-04", "GEA-06"),
    "COF-05": ("GEA-07", "SNK-05"),
    "COF-06": ("GEA-07", "SNK-06"),
    "COF-07": ("GEA-07",),
    "COF-08": ("GEA-01", "GEA-02"),
    "GEA-02": ("GEA-01", "COF-02", "GEA-05"),
    "GEA-03": ("COF-01", "GEA-01", "COF-02"),
    "GEA-04": ("COF-04", "GEA-01"),
    "GEA-05": ("GEA-02", "GEA-01", "GEA-08"),
    "GEA-06": ("COF-03", "COF-04"),
    "TEA-01": ("TEA-08", "HOM-06", "SNK-04"),
    "TEA-02": ("TEA-08", "SNK-03"),
    "TEA-03": ("TEA-08", "HOM-06"),
    "TEA-04": ("TEA-08", "SNK-04"),
    "TEA-05": ("SNK-06", "HOM-06"),
    "TEA-06": ("HOM-06", "SNK-04"),
    "TEA-07": ("TEA-08",),
    "PHN-01": ("ACC-01", "ACC-02", "ACC-03", "ACC-05"),
    "PHN-02": ("ACC-01", "ACC-02", "ACC-03", "ACC-05"),
    "PHN-03": ("ACC-01", "ACC-02", "ACC-05"),
    "PHN-04": ("ACC-01", "ACC-02", "ACC-03"),
    "PHN-05": ("ACC-01", "ACC-02", "ACC-03", "ACC-08"),
    "PHN-06": ("ACC-01", "ACC-02"),
    "ACC-03": ("ACC-04",),
    "ACC-06": ("ACC-04",),
    "SNK-03": ("SNK-04", "TEA-06"),
    "SNK-07": ("TEA-01", "TEA-02", "SNK-03"),
    "SNK-08": ("TEA-01", "TEA-03"),
    "BEA-01": ("BEA-02", "BEA-03"),
    "BEA-03": ("BEA-01", "BEA-02"),
    "BEA-04": ("BEA-01",),
    "BEA-05": ("BEA-07",),
    "HOM-02": ("HOM-01",),
    "HOM-04": ("HOM-01", "HOM-05"),
}

# Membership plans: (code, monthly amount in CNY, share of new members).
PLANS: tuple[tuple[str, float, float], ...] = (
    ("basic", 19.0, 0.5),
    ("plus", 39.0, 0.35),
    ("premium", 69.0, 0.15),
)
CANCELLATION_REASONS: tuple[str, ...] = (
    "price",
    "not_using",
    "competitor",
    "service_problem",
    "other",
)

# ---- people ----------------------------------------------------------------------------------

# (simplified, traditional, pinyin, weight in per cent of the population)
SURNAMES: tuple[tuple[str, str, str, float], ...] = (
    ("王", "王", "wang", 7.1), ("李", "李", "li", 7.0), ("张", "張", "zhang", 6.9),
    ("刘", "劉", "liu", 5.4), ("陈", "陳", "chen", 4.6), ("杨", "楊", "yang", 3.1),
    ("黄", "黃", "huang", 2.4), ("赵", "趙", "zhao", 2.3), ("吴", "吳", "wu", 2.1),
    ("周", "周", "zhou", 2.1), ("徐", "徐", "xu", 1.7), ("孙", "孫", "sun", 1.5),
    ("马", "馬", "ma", 1.5), ("朱", "朱", "zhu", 1.3), ("胡", "胡", "hu", 1.3),
    ("郭", "郭", "guo", 1.2), ("何", "何", "he", 1.2), ("林", "林", "lin", 1.2),
    ("高", "高", "gao", 1.1), ("罗", "羅", "luo", 1.1), ("郑", "鄭", "zheng", 1.1),
    ("梁", "梁", "liang", 0.9), ("谢", "謝", "xie", 0.8), ("宋", "宋", "song", 0.8),
    ("唐", "唐", "tang", 0.8), ("许", "許", "xu", 0.7), ("韩", "韓", "han", 0.7),
    ("冯", "馮", "feng", 0.7), ("邓", "鄧", "deng", 0.7), ("曹", "曹", "cao", 0.6),
    ("彭", "彭", "peng", 0.6), ("曾", "曾", "zeng", 0.6), ("萧", "蕭", "xiao", 0.5),
    ("蔡", "蔡", "cai", 0.5), ("潘", "潘", "pan", 0.4), ("叶", "葉", "ye", 0.4),
    ("董", "董", "dong", 0.4), ("袁", "袁", "yuan", 0.4), ("欧阳", "歐陽", "ouyang", 0.1),
)  # fmt: skip
# (simplified, traditional, pinyin)
GIVEN_NAMES: tuple[tuple[str, str, str], ...] = (
    ("芳", "芳", "fang"), ("娜", "娜", "na"), ("伟", "偉", "wei"), ("敏", "敏", "min"),
    ("静", "靜", "jing"), ("丽", "麗", "li"), ("强", "強", "qiang"), ("磊", "磊", "lei"),
    ("军", "軍", "jun"), ("洋", "洋", "yang"), ("勇", "勇", "yong"), ("艳", "豔", "yan"),
    ("杰", "傑", "jie"), ("娟", "娟", "juan"), ("涛", "濤", "tao"), ("明", "明", "ming"),
    ("超", "超", "chao"), ("秀英", "秀英", "xiuying"), ("霞", "霞", "xia"), ("平", "平", "ping"),
    ("刚", "剛", "gang"), ("桂英", "桂英", "guiying"), ("晓明", "曉明", "xiaoming"),
    ("婷婷", "婷婷", "tingting"), ("浩然", "浩然", "haoran"), ("子涵", "子涵", "zihan"),
    ("梓轩", "梓軒", "zixuan"), ("欣怡", "欣怡", "xinyi"), ("雨桐", "雨桐", "yutong"),
    ("思远", "思遠", "siyuan"), ("佳怡", "佳怡", "jiayi"), ("志强", "志強", "zhiqiang"),
    ("建华", "建華", "jianhua"), ("美玲", "美玲", "meiling"), ("家豪", "家豪", "jiahao"),
    ("嘉欣", "嘉欣", "jiaxin"), ("文杰", "文傑", "wenjie"), ("俊杰", "俊傑", "junjie"),
    ("雅婷", "雅婷", "yating"), ("怡君", "怡君", "yijun"),
)  # fmt: skip
FIRST_NAMES: tuple[str, ...] = (
    "Emma", "Olivia", "Sophia", "James", "William", "Oliver", "Jack", "Charlotte", "Amelia",
    "Harry", "George", "Lucy", "Daniel", "Michael", "Sarah", "David", "Grace", "Thomas", "Emily",
    "Chloe", "Ethan", "Ryan", "Hannah", "Jessica", "Matthew", "Sophie", "Isabella", "Noah",
    "Liam", "Mia",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "Tan", "Lim", "Lee", "Ng", "Wong", "Chan", "Cheung", "Lau", "Ho", "Chen",
)  # fmt: skip


@dataclass(frozen=True)
class Region:
    code: str
    # Shares of names written in simplified Chinese, traditional Chinese and English.
    script_shares: tuple[float, float, float]
    phone_prefix: str  # "" for mainland mobiles (1[3-9]xxxxxxxxx)
    phone_digits: int  # digits after the prefix
    email_domains: tuple[str, ...]
    wechat_share: float  # share of customers with a WeChat id


REGIONS: dict[str, Region] = {
    "cn": Region("cn", (0.97, 0.0, 0.03), "", 0,
                 ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "gmail.com"), 0.55),
    "hk": Region("hk", (0.05, 0.7, 0.25), "+852 ", 8,
                 ("gmail.com", "yahoo.com.hk", "hotmail.com", "netvigator.com"), 0.2),
    "tw": Region("tw", (0.0, 0.95, 0.05), "+886 9", 8,
                 ("gmail.com", "yahoo.com.tw", "hotmail.com", "hinet.net"), 0.1),
    "uk": Region("uk", (0.15, 0.02, 0.83), "+44 7", 9,
                 ("gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"), 0.08),
    "sg": Region("sg", (0.5, 0.05, 0.45), "+65 8", 7,
                 ("gmail.com", "outlook.com", "singnet.com.sg", "yahoo.com.sg"), 0.2),
}  # fmt: skip
# (city, share of customers, region)
CITIES: tuple[tuple[str, float, str], ...] = (
    ("上海", 0.15, "cn"), ("北京", 0.13, "cn"), ("深圳", 0.10, "cn"), ("广州", 0.09, "cn"),
    ("杭州", 0.08, "cn"), ("成都", 0.07, "cn"), ("南京", 0.05, "cn"), ("武汉", 0.05, "cn"),
    ("重庆", 0.04, "cn"), ("西安", 0.03, "cn"), ("苏州", 0.03, "cn"), ("台北", 0.04, "tw"),
    ("香港", 0.05, "hk"), ("London", 0.04, "uk"), ("Singapore", 0.05, "sg"),
)  # fmt: skip

# Where customers came from, per acquisition channel.
ACQUISITION_SOURCES: dict[str, tuple[str, ...]] = {
    "web": ("organic_search", "direct", "blog"),
    "store": ("store_walk_in", "store_event"),
    "referral": ("member_referral", "friend_code"),
    "ads": ("baidu_sem", "douyin_ads", "xiaohongshu_ads", "google_ads"),
    "wechat": ("wechat_official_account", "wechat_mini_program", "wechat_moments_ads"),
}
# Free attributes of a customer, as the import's attributes column carries them.
SEGMENT_HINTS: tuple[str, ...] = ("student", "young_professional", "family", "business", "senior")
INDUSTRIES: tuple[str, ...] = (
    "retail", "it", "education", "finance", "healthcare", "manufacturing", "hospitality",
)  # fmt: skip
TAGS: tuple[str, ...] = ("vip", "wholesale", "newsletter", "gift-buyer", "coffee-lover")

# ---- behaviour -------------------------------------------------------------------------------

PAGES: tuple[str, ...] = (
    "home", "product", "category", "search", "cart", "checkout", "member-center", "coupons",
    "help", "orders",
)  # fmt: skip
PAGE_WEIGHTS: tuple[float, ...] = (0.22, 0.28, 0.1, 0.08, 0.09, 0.03, 0.06, 0.06, 0.03, 0.05)
EVENT_TYPES: tuple[str, ...] = ("view", "click")

# ---- interactions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A short interaction text in simplified Chinese, traditional Chinese and English."""

    subject: tuple[str, str, str]
    body: tuple[str, str, str]


# Customers write in: kind is chat, call, email or wechat; outcome "answered".
SERVICE_TEXTS: tuple[Text, ...] = (
    Text(("咨询发货时间", "諮詢發貨時間", "Shipping time question"),
         ("客户询问订单什么时候发货，已告知48小时内发货并提供快递单号。",
          "客戶詢問訂單什麼時候發貨，已告知48小時內發貨並提供快遞單號。",
          "Customer asked when the order ships; told within 48 hours and sent the tracking number.")),
    Text(("申请退款", "申請退款", "Refund request"),
         ("客户申请退款，商品未拆封，已按流程办理退款，3-5个工作日到账。",
          "客戶申請退款，商品未拆封，已按流程辦理退款，3-5個工作日到帳。",
          "Customer asked for a refund on an unopened item; refund processed, 3-5 working days.")),
    Text(("会员权益咨询", "會員權益諮詢", "Membership benefits"),
         ("客户咨询会员积分和生日优惠，已说明会员等级规则。",
          "客戶諮詢會員積分和生日優惠，已說明會員等級規則。",
          "Customer asked about membership points and the birthday discount; explained the tiers.")),
    Text(("优惠券无法使用", "優惠券無法使用", "Coupon not working"),
         ("客户反映优惠券结算时无法使用，已补发一张新的优惠券。",
          "客戶反映優惠券結算時無法使用，已補發一張新的優惠券。",
          "Customer's coupon failed at checkout; issued a new coupon.")),
    Text(("产品咨询", "產品諮詢", "Product question"),
         ("客户咨询咖啡豆的烘焙程度和保存方法，已推荐搭配滤纸。",
          "客戶諮詢咖啡豆的烘焙程度和保存方法，已推薦搭配濾紙。",
          "Customer asked about roast level and storage of the beans; suggested matching filters.")),
    Text(("修改收货地址", "修改收貨地址", "Change of delivery address"),
         ("客户要求修改收货地址，订单尚未发货，已更新。",
          "客戶要求修改收貨地址，訂單尚未發貨，已更新。",
          "Customer asked to change the delivery address before shipping; updated.")),
)  # fmt: skip
# Staff reach out: kind is call, email, wechat, sms, visit or note.
OUTREACH_TEXTS: tuple[Text, ...] = (
    Text(("新客户回访", "新客戶回訪", "New customer check-in"),
         ("第一次购买后的回访电话，客户对商品满意，介绍了会员计划。",
          "第一次購買後的回訪電話，客戶對商品滿意，介紹了會員計劃。",
          "Check-in after the first purchase; customer is happy, introduced the membership plan.")),
    Text(("会员专享优惠", "會員專享優惠", "Member offer"),
         ("发送本月会员专享优惠活动，满300减50。",
          "發送本月會員專享優惠活動，滿300減50。",
          "Sent this month's member offer: 50 off orders over 300.")),
    Text(("复购提醒", "回購提醒", "Reorder reminder"),
         ("客户的咖啡豆快用完了，提醒复购并赠送一张优惠券。",
          "客戶的咖啡豆快用完了，提醒回購並贈送一張優惠券。",
          "Customer's beans should be running low; reminded them and sent a coupon.")),
    Text(("客户备注", "客戶備註", "Customer note"),
         ("客户偏好周末送货，喜欢浅烘焙咖啡。",
          "客戶偏好週末送貨，喜歡淺烘焙咖啡。",
          "Prefers weekend delivery; likes light roasts.")),
    Text(("门店到访", "門市到訪", "Store visit"),
         ("客户到门店试用新款手机，留下了联系方式。",
          "客戶到門市試用新款手機，留下了聯絡方式。",
          "Customer visited the store to try the new phone and left contact details.")),
    Text(("会员续费提醒", "會員續費提醒", "Membership renewal reminder"),
         ("提醒客户会员即将续费，介绍了高级会员的额外权益。",
          "提醒客戶會員即將續費，介紹了高級會員的額外權益。",
          "Reminded the customer of the renewal and explained the premium benefits.")),
)  # fmt: skip
WIN_BACK_TEXT = Text(
    ("挽回回访", "挽回回訪", "Win-back call"),
    ("客户很久没有购买，电话了解原因并提供回归优惠。",
     "客戶很久沒有購買，電話了解原因並提供回歸優惠。",
     "Customer has not bought for a while; called to ask why and offered a welcome-back discount."),
)  # fmt: skip
PROSPECT_TEXT = Text(
    ("意向客户跟进", "意向客戶跟進", "Lead follow-up"),
    ("客户对会员计划和新品感兴趣，约定下周再联系。",
     "客戶對會員計劃和新品感興趣，約定下週再聯繫。",
     "Interested in the membership plan and new arrivals; agreed to talk again next week."),
)  # fmt: skip
# Complaints (kind "complaint", inbound); the order they concern is appended to the body.
COMPLAINT_TEXTS: tuple[Text, ...] = (
    Text(("投诉：发货太慢", "投訴：發貨太慢", "Complaint: slow shipping"),
         ("客户投诉下单一周仍未发货，要求尽快发货或退款。",
          "客戶投訴下單一週仍未發貨，要求盡快發貨或退款。",
          "Order placed a week ago has still not shipped; customer wants it shipped now or a refund.")),
    Text(("投诉：商品破损", "投訴：商品破損", "Complaint: damaged item"),
         ("收到的商品包装破损，客户要求换货并补偿。",
          "收到的商品包裝破損，客戶要求換貨並補償。",
          "Item arrived damaged; customer asks for a replacement and compensation.")),
    Text(("投诉：退款迟迟未到账", "投訴：退款遲遲未到帳", "Complaint: refund not received"),
         ("客户申请退款两周仍未到账，情绪不满。",
          "客戶申請退款兩週仍未到帳，情緒不滿。",
          "Refund requested two weeks ago has not arrived; customer is upset.")),
    Text(("投诉：会员重复扣费", "投訴：會員重複扣費", "Complaint: membership charged twice"),
         ("客户反映会员费被重复扣款，要求退还多扣的费用。",
          "客戶反映會員費被重複扣款，要求退還多扣的費用。",
          "Membership fee was charged twice; customer wants the extra charge back.")),
    Text(("投诉：客服态度差", "投訴：客服態度差", "Complaint: poor service"),
         ("客户认为客服回复慢、态度差，优惠活动规则说明不清。",
          "客戶認為客服回覆慢、態度差，優惠活動規則說明不清。",
          "Customer says support was slow and rude and the discount rules were unclear.")),
    Text(("投诉：发错货", "投訴：發錯貨", "Complaint: wrong item sent"),
         ("客户收到的商品与订单不符，要求重新发货。",
          "客戶收到的商品與訂單不符，要求重新發貨。",
          "Received a different item from the one ordered; wants the right one sent.")),
)  # fmt: skip
# The five-step recovery of a complaint, logged as the follow-up call that closes it.
RECOVERY_TEXT = Text(
    ("投诉回访", "投訴回訪", "Complaint follow-up"),
    ("已道歉并补发商品，赠送优惠券作为补偿，客户表示满意。",
     "已道歉並補發商品，贈送優惠券作為補償，客戶表示滿意。",
     "Apologised, sent a replacement and a coupon as compensation; customer is satisfied."),
)  # fmt: skip
ORDER_REFERENCE: tuple[str, str, str] = (" 订单号：", " 訂單號：", " Order: ")

# All texts in one sequence, so a column of texts is one take from a flat array.
ALL_TEXTS: tuple[Text, ...] = (
    SERVICE_TEXTS + OUTREACH_TEXTS + (WIN_BACK_TEXT, PROSPECT_TEXT, RECOVERY_TEXT) + COMPLAINT_TEXTS
)
SERVICE = 0
OUTREACH = len(SERVICE_TEXTS)
WIN_BACK = OUTREACH + len(OUTREACH_TEXTS)
PROSPECT, RECOVERY, COMPLAINT = WIN_BACK + 1, WIN_BACK + 2, WIN_BACK + 3
SUBJECTS = pa.array([t.subject[script] for t in ALL_TEXTS for script in range(3)], pa.string())
BODIES = pa.array([t.body[script] for t in ALL_TEXTS for script in range(3)], pa.string())
OUTCOMES: tuple[str, ...] = (
    "answered", "no_answer", "resolved", "unresolved", "interested", "callback", "declined",
)  # fmt: skip

# How customers of each acquisition channel order: shares of web, app, store, wechat.
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "store", "wechat")
ORDER_CHANNEL_SHARES: dict[str, tuple[float, float, float, float]] = {
    "web": (0.55, 0.35, 0.0, 0.1),
    "store": (0.1, 0.2, 0.65, 0.05),
    "referral": (0.45, 0.35, 0.1, 0.1),
    "ads": (0.55, 0.4, 0.0, 0.05),
    "wechat": (0.15, 0.15, 0.0, 0.7),
}
CONSENT_SOURCES: dict[str, str] = {
    "web": "signup_form",
    "store": "store_counter",
    "referral": "referral_form",
    "ads": "landing_page",
    "wechat": "wechat_mini_program",
}

# ---- calendar --------------------------------------------------------------------------------

# Chinese New Year (first day of the first lunar month).
CHINESE_NEW_YEAR: tuple[dt.date, ...] = tuple(
    dt.date.fromisoformat(day)
    for day in (
        "2015-02-19",
        "2016-02-08",
        "2017-01-28",
        "2018-02-16",
        "2019-02-05",
        "2020-01-25",
        "2021-02-12",
        "2022-02-01",
        "2023-01-22",
        "2024-02-10",
        "2025-01-29",
        "2026-02-17",
        "2027-02-06",
        "2028-01-26",
        "2029-02-13",
        "2030-02-03",
        "2031-01-23",
        "2032-02-11",
        "2033-01-31",
        "2034-02-19",
        "2035-02-08",
        "2036-01-28",
        "2037-02-15",
        "2038-02-04",
        "2039-01-24",
        "2040-02-12",
    )  # fmt: skip
)
# Shopping intensity by local (UTC+8) hour of day and by weekday (Monday first).
HOUR_WEIGHTS: tuple[float, ...] = (
    0.35, 0.18, 0.08, 0.05, 0.05, 0.08, 0.2, 0.4, 0.6, 0.8, 1.0, 1.1,
    1.2, 1.1, 1.0, 1.0, 1.05, 1.1, 1.2, 1.4, 1.6, 1.7, 1.4, 0.8,
)  # fmt: skip
WEEKDAY_WEIGHTS: tuple[float, ...] = (0.92, 0.9, 0.93, 0.95, 1.02, 1.15, 1.13)


# ---- identities ------------------------------------------------------------------------------

REGION_CODES: tuple[str, ...] = tuple(REGIONS)
CITY_REGIONS = np.array([REGION_CODES.index(region) for _, _, region in CITIES])
SCRIPTS: tuple[str, ...] = ("zh-Hans", "zh-Hant", "en")


def _column(values: tuple[str, ...] | list[str]) -> pa.Array:
    return pa.array(list(values), pa.string())


def _number(values: np.ndarray, width: int = 0) -> pa.Array:
    text = pc.cast(pa.array(values, pa.int64()), pa.string())
    return pc.utf8_lpad(text, width=width, padding="0") if width else text


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def identities(
    rng: np.random.Generator,
    number: np.ndarray,
    region: np.ndarray,
    script: np.ndarray,
    contact: np.ndarray,
) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Names, emails, phones and WeChat ids for records ``number`` (0-based, unique in the run).

    ``script`` picks simplified Chinese (0), traditional Chinese (1) or English (2) names;
    ``contact`` (n x 4 booleans: email, sms, wechat, phone) says who has which. Emails, phones and
    WeChat ids embed a bijection of the record number, so they never collide within a run.
    """
    n = number.size
    weights = np.array([s[3] for s in SURNAMES])
    surname = rng.choice(len(SURNAMES), n, p=weights / weights.sum())
    given = rng.integers(0, len(GIVEN_NAMES), n)
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    sur_py = _column([s[2] for s in SURNAMES]).take(surname)
    given_py = _column([g[2] for g in GIVEN_NAMES]).take(given)
    first_lo = _column([f.lower() for f in FIRST_NAMES]).take(first)
    last_lo = _column([f.lower() for f in LAST_NAMES]).take(last)
    names = pc.choose(
        pa.array(script, pa.int8()),
        _join(
            _column([s[0] for s in SURNAMES]).take(surname),
            _column([g[0] for g in GIVEN_NAMES]).take(given),
        ),
        _join(
            _column([s[1] for s in SURNAMES]).take(surname),
            _column([g[1] for g in GIVEN_NAMES]).take(given),
        ),
        pc.binary_join_element_wise(
            _column(FIRST_NAMES).take(first), _column(LAST_NAMES).take(last), " "
        ),
    )
    english = pa.array(script == 2)
    # Multipliers coprime with 10 make these bijections modulo powers of ten.
    tag = _number((number * 7_919_777 + 3_331) % 10**7)
    chinese_local = pc.if_else(
        pa.array(rng.random(n) < 0.5),
        _join(given_py, ".", sur_py, tag),
        _join(sur_py, given_py, tag),
    )
    local = pc.if_else(english, _join(first_lo, ".", last_lo, tag), chinese_local)
    domains = [REGIONS[code].email_domains for code in REGION_CODES]
    offsets = np.cumsum([0] + [len(d) for d in domains])
    domain = offsets[region] + (rng.random(n) * np.diff(offsets)[region]).astype(np.int64)
    flat_domains = [d for group in domains for d in group]
    qq = domain == flat_domains.index("qq.com")
    qq_number = _number(100_000 + (number * 982_451_653 + 17) % 10**9)
    local = pc.if_else(pa.array(qq), qq_number, local)
    emails = _join(local, "@", _column(flat_domains).take(domain))

    def mobile(digits: int) -> pa.Array:
        return _number((number * 982_451_653 + 271_828_183) % 10**digits, digits)

    phones = pc.choose(
        pa.array(region, pa.int8()),
        *(
            _join("1", _number(rng.integers(3, 10, n)), mobile(9))  # mainland: 1[3-9]xxxxxxxxx
            if code == "cn"
            else _join(REGIONS[code].phone_prefix, mobile(REGIONS[code].phone_digits))
            for code in REGION_CODES
        ),
    )

    handle = pc.if_else(english, first_lo, _join(sur_py, given_py))
    wechat = _join(handle, "_", _number((number * 6_700_417 + 11) % 10**7))
    empty = pa.scalar(None, pa.string())
    return (
        names,
        pc.if_else(pa.array(contact[:, 0]), emails, empty),
        pc.if_else(pa.array(contact[:, 3]), phones, empty),
        pc.if_else(pa.array(contact[:, 2]), wechat, empty),
    )
