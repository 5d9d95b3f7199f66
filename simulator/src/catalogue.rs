//! The small fixed sets simulated values are drawn from. Public so tests
//! and benchmarks can check what they receive against them.

/// A rendition of the adaptive bitrate ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendition {
    /// Encoded bitrate, kbps.
    pub bitrate_kbps: u32,
    /// Name, as in the `rendition` field.
    pub name: &'static str,
    /// Picture height, pixels.
    pub height: u32,
}

/// The bitrate ladder, lowest first.
pub const LADDER: [Rendition; 4] = [
    Rendition {
        bitrate_kbps: 800,
        name: "360p",
        height: 360,
    },
    Rendition {
        bitrate_kbps: 1_500,
        name: "480p",
        height: 480,
    },
    Rendition {
        bitrate_kbps: 3_000,
        name: "720p",
        height: 720,
    },
    Rendition {
        bitrate_kbps: 6_000,
        name: "1080p",
        height: 1080,
    },
];

/// A gift viewers can send, with its unit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gift {
    /// The `gift_id`.
    pub id: &'static str,
    /// Price of one gift, cents; an event's `value_cents` is `count` times this.
    pub unit_cents: u64,
    /// Relative frequency: cheap gifts are sent far more often.
    pub weight: u32,
}

/// The gift catalogue.
pub const GIFTS: [Gift; 6] = [
    Gift {
        id: "heart",
        unit_cents: 10,
        weight: 500,
    },
    Gift {
        id: "glowstick",
        unit_cents: 50,
        weight: 250,
    },
    Gift {
        id: "rose",
        unit_cents: 100,
        weight: 150,
    },
    Gift {
        id: "fireworks",
        unit_cents: 1_000,
        weight: 70,
    },
    Gift {
        id: "rocket",
        unit_cents: 5_000,
        weight: 25,
    },
    Gift {
        id: "castle",
        unit_cents: 50_000,
        weight: 5,
    },
];

/// Combo sizes for cheap gifts (count, weight); 520 and 66/99 are the
/// lucky numbers such combos favour.
pub(crate) const GIFT_COUNTS: [(u32, u32); 6] =
    [(1, 700), (5, 120), (10, 100), (66, 40), (99, 30), (520, 10)];

/// Gifts from this unit price on are sent one or two at a time.
pub(crate) const PRICEY_GIFT_CENTS: u64 = 1_000;

/// Device classes (name, weight, is mobile).
pub const DEVICES: [(&str, u32, bool); 5] = [
    ("desktop", 38, false),
    ("android", 27, true),
    ("ios", 22, true),
    ("tv", 9, false),
    ("web_mobile", 4, true),
];

/// Display height of a device class, pixels: phones show 720 lines, the
/// others 1080.
pub fn display_height(device: &str) -> u32 {
    match device {
        "android" | "ios" | "web_mobile" => 720,
        _ => 1_080,
    }
}

/// How far a player upscales `rendition` on a `display_height` display,
/// percent (0 when the picture is as tall or taller).
pub fn upscale_pct(rendition: &Rendition, display_height: u32) -> u32 {
    (display_height * 100 / rendition.height).saturating_sub(100)
}

/// Players available on a device class.
pub(crate) fn players(device: &str) -> &'static [&'static str] {
    match device {
        "ios" => &["avplayer/18", "avplayer/17"],
        "android" => &["exoplayer/1.8", "exoplayer/1.5"],
        "tv" => &["shaka/4.16", "exoplayer/1.8"],
        _ => &["hls.js/1.7", "hls.js/1.6", "shaka/4.16", "dash.js/5.1"],
    }
}

/// CDNs (name, weight, stall multiplier): the platform's own small edge
/// is the weak spot a cohort breakdown should find.
pub const CDNS: [(&str, u32, f64); 4] = [
    ("akamai", 40, 1.0),
    ("cloudfront", 30, 1.0),
    ("fastly", 20, 1.0),
    ("own-edge", 10, 1.6),
];

/// Viewer regions (name, weight, stall multiplier): far from the origin,
/// networks stall more.
pub const REGIONS: [(&str, u32, f64); 7] = [
    ("eu-west", 22, 1.0),
    ("eu-central", 18, 1.0),
    ("us-east", 20, 1.0),
    ("us-west", 10, 1.0),
    ("ap-east", 18, 1.2),
    ("ap-southeast", 7, 1.8),
    ("sa-east", 5, 1.8),
];

/// Non-fatal player error codes.
pub const SOFT_ERRORS: [&str; 4] = [
    "fragLoadTimeOut",
    "fragParsingError",
    "levelLoadTimeOut",
    "bufferAppendError",
];

/// Fatal player error codes.
pub const FATAL_ERRORS: [&str; 4] = [
    "manifestLoadError",
    "MEDIA_ERR_DECODE",
    "MEDIA_ERR_SRC_NOT_SUPPORTED",
    "keySystemNoAccess",
];

/// Chat messages (弹幕 among them), including quotes and a backslash so
/// the JSON path gets exercised.
pub const MESSAGES: [&str; 32] = [
    "gg",
    "lol",
    "W",
    "LET'S GOOO",
    "nice shot!",
    "first time here, hi all",
    "what game is this?",
    "clip it!",
    "hello from Berlin",
    "audio is a bit quiet",
    "is this live?",
    "that was insane",
    "he said \"no way\" lmao",
    "\\o/",
    "🔥🔥🔥",
    "❤️",
    "哈哈哈哈哈",
    "666",
    "前方高能",
    "awsl",
    "太强了",
    "主播加油",
    "打卡",
    "好听",
    "这波操作可以",
    "下次一定",
    "草",
    "ㅋㅋㅋㅋ",
    "대박",
    "すごい",
    "ナイス！",
    "gg wp 👏",
];

/// Stream categories with a few titles each.
pub const CATEGORIES: [(&str, &[&str]); 7] = [
    (
        "gaming",
        &[
            "Ranked grind until Diamond",
            "Blind playthrough, no spoilers!",
            "Speedrun attempts: any%",
            "【直播】通宵打游戏",
        ],
    ),
    (
        "just_chatting",
        &[
            "Morning coffee and chat",
            "深夜杂谈 · 聊聊天",
            "Ask me anything",
        ],
    ),
    (
        "music",
        &[
            "Chill lo-fi beats to code to",
            "Piano requests 🎹",
            "吉他弹唱 · 点歌",
        ],
    ),
    ("esports", &["Finals watch party", "LCK 赛后复盘"]),
    (
        "creative",
        &["Painting a dragon from scratch", "Pixel art commissions"],
    ),
    ("sports", &["Sunday league live", "Marathon training run"]),
    (
        "irl",
        &["Road trip through Hokkaido", "早安打卡 ☀️ 城市漫步"],
    ),
];
