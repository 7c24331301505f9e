"""The floor's statements: each builds one complete response body, as JSON text.

The viewer's id is a parameter that is NULL for anonymous requests, which makes `favorited`
and `following` false without a second statement.
"""


def _timestamp(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def _profile(user: str, viewer: str) -> str:
    return f"""json_build_object(
        'username', {user}.username,
        'bio', {user}.bio,
        'image', {user}.image,
        'following', EXISTS (
            SELECT FROM follows w WHERE w.follower_id = {viewer} AND w.followee_id = {user}.id
        )
    )"""


def _article(article: str, viewer: str, *, with_body: bool) -> str:
    body = f", 'body', {article}.body" if with_body else ""
    return f"""json_build_object(
        'slug', {article}.slug,
        'title', {article}.title,
        'description', {article}.description,
        'tagList', coalesce((
            SELECT json_agg(t.name ORDER BY t.name)
            FROM article_tags x JOIN tags t ON t.id = x.tag_id
            WHERE x.article_id = {article}.id
        ), '[]'::json),
        'createdAt', {_timestamp(f"{article}.created_at")},
        'updatedAt', {_timestamp(f"{article}.updated_at")},
        'favorited', EXISTS (
            SELECT FROM favorites f WHERE f.article_id = {article}.id AND f.user_id = {viewer}
        ),
        'favoritesCount', (SELECT count(*) FROM favorites f WHERE f.article_id = {article}.id),
        'author', {_profile("u", viewer)}{body}
    )"""


def _page(newest_first: str, count: str) -> str:
    """$1 limit, $2 offset, $3 viewer; `newest_first` selects the page's articles in order."""
    return f"""
    WITH page AS ({newest_first})
    SELECT json_build_object(
        'articles', coalesce((
            SELECT json_agg(
                {_article("p", "$3", with_body=False)}
                ORDER BY p.created_at DESC, p.id DESC
            )
            FROM page p JOIN users u ON u.id = p.author_id
        ), '[]'::json),
        'articlesCount', ({count})
    )::text
    """


_COLUMNS = "id, slug, title, description, created_at, updated_at, author_id"
_NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"

# The total comes from the row Conduit keeps up to date (article_totals), as Conduit reads it.
LIST = _page(
    f"SELECT {_COLUMNS} FROM articles {_NEWEST_FIRST} LIMIT $1 OFFSET $2",
    "SELECT count FROM article_totals",
)

# The newest `limit + offset` articles of each followed author, through the (author_id,
# created_at, id) index, then the page among them: the cost follows the number of followed
# authors, not the number of articles, whatever plan a scan from the newest article would get.
FEED = _page(
    f"""
    SELECT a.* FROM follows w CROSS JOIN LATERAL (
        SELECT {_COLUMNS} FROM articles
        WHERE author_id = w.followee_id {_NEWEST_FIRST} LIMIT $1::bigint + $2::bigint
    ) a
    WHERE w.follower_id = $3
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT $1 OFFSET $2
    """,
    "SELECT count(*) FROM articles"
    " WHERE author_id IN (SELECT followee_id FROM follows WHERE follower_id = $3)",
)

ARTICLE = f"""
    SELECT json_build_object('article', {_article("a", "$2", with_body=True)})::text
    FROM articles a JOIN users u ON u.id = a.author_id
    WHERE a.slug = $1
"""

COMMENTS = f"""
    SELECT json_build_object('comments', coalesce((
        SELECT json_agg(json_build_object(
            'id', c.id,
            'createdAt', {_timestamp("c.created_at")},
            'updatedAt', {_timestamp("c.updated_at")},
            'body', c.body,
            'author', {_profile("u", "$2")}
        ) ORDER BY c.id)
        FROM comments c JOIN users u ON u.id = c.author_id
        WHERE c.article_id = a.id
    ), '[]'::json))::text
    FROM articles a
    WHERE a.slug = $1
"""

TAGS = """
    SELECT json_build_object('tags', coalesce(json_agg(t.name ORDER BY t.name), '[]'::json))::text
    FROM tags t
    WHERE EXISTS (SELECT FROM article_tags x WHERE x.tag_id = t.id)
"""
