from conduit.schemas import Schema


class Profile(Schema):
    username: str
    bio: str | None
    image: str | None
    following: bool


class ProfileResponse(Schema):
    profile: Profile
