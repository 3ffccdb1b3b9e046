"""No views: the project exists for its models, receiver and database."""

urlpatterns = []
