from conduit.schemas import Schema


class TagsResponse(Schema):
    tags: list[str]
